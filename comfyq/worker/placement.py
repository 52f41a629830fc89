"""Place the next jobs' prompts on the instance while the running one executes; withdraw those that ended.

The pool child, following its running prompt, places each next job the worker
holds (comfyq.worker.lookahead): it records the placement (at most one
instance per job, comfyq.fleet.placements), then posts the prompt under the
job's id. ComfyUI's own queue starts it the moment the running prompt ends.
The job stays ``queued``, using no attempt, until its own task comes and
claims it (comfyq.worker.runner), once the job before it has ended. A placed
job cancelled meanwhile has its prompt taken out of ComfyUI's queue here; one
whose prompt ComfyUI refuses fails at once, refunded by that move. While
another instance that could run a held job sits idle with nothing queued for
it, the job goes back to the queue instead (comfyq.worker.handback).
"""
from __future__ import annotations

import logging

import redis
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select

from ..comfy import ComfyClient, ComfyError, PromptRejected
from ..config.settings import Instance
from ..db.extensions import db
from ..db.models import Job
from ..fleet import placements
from ..jobs.machine import JobStatus, is_terminal, transition
from ..storage.base import Store
from . import claim, handback, lookahead, prompts
from .transfer import stage_inputs

logger = logging.getLogger(__name__)
# Prompts this process posted ahead: ComfyUI sends their messages to its websocket, so their runs need not poll.
POSTED_HERE: set[str] = set()


class Placer:
    """Keep up to ``depth`` - 1 next prompts waiting on one instance behind the running one."""

    def __init__(self, instance: Instance, client: ComfyClient, inputs: Store, r: redis.Redis,
                 hostname: str | None, depth: int, peers: dict[str, Instance]) -> None:
        self.instance, self.client, self.inputs, self.redis = instance, client, inputs, r
        self.hostname, self.depth = hostname, depth
        self.tried: set[str] = set()  # jobs this run placed, or found it must not
        self.withdrawn: set[str] = set()
        self.handback = handback.HandBack(instance, peers, r)

    def step(self, running: str) -> None:
        """Place what is due behind ``running``, hand back what an idle instance could run, withdraw what ended."""
        if self.depth < 2:
            return
        try:
            following = lookahead.next_jobs(lookahead.held(self.redis, self.instance.name), running, self.depth)
            idle = self.handback.idle_queues(looking=bool(following))
            for job_id in following:
                if idle and self.handback.offer(job_id, idle, self.client):
                    continue
                if job_id not in self.tried and self._place(job_id):
                    self.tried.add(job_id)
            self._withdraw_ended(running)
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # noqa: BLE001 - placing ahead is a saving: it must never fail the running job
            logger.exception("placing the next prompts on %s failed; they will run unplaced", self.instance.name)
            db.session.rollback()

    def _place(self, job_id: str) -> bool:
        """Queue one next job's prompt behind the running one; return whether that is settled."""
        db.session.rollback()  # a fresh read
        job = db.session.get(Job, job_id, populate_existing=True)
        if job is None or is_terminal(job.status):
            lookahead.started(self.redis, self.instance.name, job_id)  # it will not run: off the list
            return True
        if job.status == JobStatus.PENDING or prompts.refusal(self.redis, self.instance) is not None:
            return False  # its admission not committed yet, or an unfit instance: ask again at the next poll
        if job.status != JobStatus.QUEUED or not placements.place(self.redis, self.instance.name, job_id):
            return True  # taken already, or placed: its own run follows it
        if placements.handed_back(self.redis, self.instance.name, job_id):  # by the main process, just now
            placements.unplace(self.redis, self.instance.name, job_id)
            return True
        stage_inputs(self.client, self.inputs, list(job.inputs or ()))
        POSTED_HERE.add(job_id)
        try:
            self.client.queue_prompt(job.workflow, job_id)
        except PromptRejected as exc:
            placements.unplace(self.redis, self.instance.name, job_id)
            status, error = prompts.prompt_failure(exc, cancelling=False)
            transition(job_id, status, [JobStatus.QUEUED], error=error, worker=self.hostname)
            logger.info("job %s: its prompt was refused when placed ahead: %s", job_id, exc.message)
            return True
        except ComfyError as exc:  # the job's own run looks for the prompt, and posts it if it is not there
            logger.warning("job %s: placing its prompt on %s failed: %s", job_id, self.instance.name, exc)
            return True
        db.session.rollback()
        now = db.session.scalar(select(Job.status).where(Job.id == job_id))
        if now != JobStatus.QUEUED:  # cancelled, or taken by a run that looked before the placement
            self._withdraw(job_id, str(now))
        else:
            logger.info("job %s: prompt placed on %s behind the running one", job_id, self.instance.name)
        return True

    def _withdraw_ended(self, running: str) -> None:
        """Take the prompts of placed jobs that ended (say, cancelled) out of ComfyUI's queue, once each."""
        placed = placements.placed_jobs(self.redis, self.instance.name) - self.withdrawn - {running}
        if not placed:
            return
        db.session.rollback()
        found = dict(db.session.execute(select(Job.id, Job.status).where(Job.id.in_(placed))).tuples().all())
        for job_id in placed:
            status = found.get(job_id, "missing")
            if status != JobStatus.QUEUED:
                self._withdraw(job_id, status)

    def _withdraw(self, job_id: str, status: str) -> None:
        """Stop a placed prompt whose job ended ``status`` or runs elsewhere, and forget the placement."""
        self.withdrawn.add(job_id)  # its own run cannot have claimed it: this process is busy with another
        claim.let_go(self.client, self.redis, self.instance.name, job_id, status)
