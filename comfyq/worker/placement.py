"""Place the next jobs' prompts on the instance while the running one executes, and withdraw cancelled ones.

The pool child, following its running prompt, claims each next job the worker
holds (comfyq.worker.lookahead): a guarded move from ``queued`` to ``running``
on this instance (one attempt, as any run's claim), then ``POST /prompt``
under the job's id. ComfyUI's own queue starts it the moment the running prompt
ends; the job's own task, when it comes, finds it placed and follows it
(comfyq.worker.claim). A placed job cancelled meanwhile is taken out of
ComfyUI's queue here and refunded, since it never held the GPU
(comfyq.worker.claim); one whose prompt ComfyUI refuses fails at once,
refunded by that move.
"""
from __future__ import annotations

import logging

import redis
from celery.exceptions import SoftTimeLimitExceeded

from ..comfy import ComfyClient, ComfyError, PromptRejected
from ..config.settings import Instance
from ..db.extensions import db
from ..db.models import Job
from ..events import log as events
from ..fleet import instances
from ..jobs.machine import JobStatus, is_terminal, transition
from ..storage.base import Store
from . import claim, lookahead, prompts
from .transfer import stage_inputs

logger = logging.getLogger(__name__)


class Placer:
    """Keep up to ``depth`` - 1 next prompts waiting on one instance behind the running one."""

    def __init__(self, instance: Instance, client: ComfyClient, inputs: Store, r: redis.Redis,
                 hostname: str | None, depth: int) -> None:
        self.instance, self.client, self.inputs, self.redis = instance, client, inputs, r
        self.hostname, self.depth = hostname, depth
        self.tried: set[str] = set()  # jobs this run placed, or found it must not
        self.withdrawn: set[str] = set()

    def step(self, running: str) -> None:
        """Place what is due behind ``running`` and withdraw placed prompts whose jobs were cancelled."""
        if self.depth < 2:
            return
        try:
            for job_id in lookahead.next_jobs(lookahead.held(self.redis, self.instance.name), running, self.depth):
                if job_id not in self.tried and self._place(job_id):
                    self.tried.add(job_id)
            self._withdraw_cancelled()
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # noqa: BLE001 - placing ahead is a saving: it must never fail the running job
            logger.exception("placing the next prompts on %s failed; they will run unplaced", self.instance.name)
            db.session.rollback()

    def _place(self, job_id: str) -> bool:
        """Claim one next job and queue its prompt behind the running one; return whether that is settled."""
        db.session.rollback()  # a fresh read
        job = db.session.get(Job, job_id, populate_existing=True)
        if job is None or is_terminal(job.status):
            lookahead.started(self.redis, self.instance.name, job_id)  # it will not run: off the list
            return True
        if job.status == JobStatus.PENDING or prompts.refusal(self.redis, self.instance) is not None:
            return False  # its admission not committed yet, or an unfit instance: ask again at the next poll
        if job.status != JobStatus.QUEUED:
            return True  # taken already: its own run follows it
        workflow = job.workflow
        stage_inputs(self.client, self.inputs, list(job.inputs or ()))
        if not transition(job.id, JobStatus.RUNNING, [JobStatus.QUEUED], instance=self.instance.name,
                          prompt_id=job.id, attempts=Job.attempts + 1, progress=None, worker=self.hostname):
            return True
        instances.mark_placed(self.redis, self.instance.name, job_id)
        try:
            self.client.queue_prompt(workflow, job_id)
        except PromptRejected as exc:
            instances.unmark_placed(self.redis, self.instance.name, job_id)
            status, error = prompts.prompt_failure(exc, cancelling=False)
            transition(job_id, status, [JobStatus.RUNNING], error=error, worker=self.hostname)
            logger.info("job %s: its prompt was refused when placed ahead: %s", job_id, exc.message)
        except ComfyError as exc:  # the job's own run finds the prompt there, or places it then
            logger.warning("job %s: placing its prompt on %s failed: %s", job_id, self.instance.name, exc)
        else:
            logger.info("job %s: prompt placed on %s behind the running one", job_id, self.instance.name)
        return True

    def _withdraw_cancelled(self) -> None:
        """Take the prompts of placed jobs that were cancelled out of ComfyUI's queue (once each)."""
        for job_id in instances.placed_jobs(self.redis, self.instance.name) - self.withdrawn:
            if events.cancel_requested(self.redis, job_id):
                self.withdrawn.add(job_id)
                claim.withdraw(self.client, job_id)
                logger.info("job %s: cancelled while placed; its prompt left %s's queue", job_id, self.instance.name)
