"""Run one job on this worker's ComfyUI instance, from claim to stored outputs."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import redis
from celery.exceptions import SoftTimeLimitExceeded
from flask import current_app
from sqlalchemy import select

from ..events import log as events
from . import claim, lookahead, prompts
from .limits import SoftDeadline, as_datetime, execution_start, history_start
from .placement import POSTED_HERE, Placer
from ..fleet import instances, lease, placements
from ..comfy import (ComfyClient, ComfyConnectFailed, ComfyProtocolError, ComfyTimeout, ComfyUnreachable,
                     ExecutionFailed, ExecutionInterrupted, PromptLost, PromptRejected)
from ..comfy.payloads import outcome
from ..config.settings import Instance
from ..db.extensions import db
from ..jobs import recovery
from ..jobs.machine import JobStatus, is_terminal, set_progress, set_started, transition
from ..db.models import Job
from ..events.announcer import RunNews
from ..events.progress import ProgressTracker
from ..templates.deployment import node_labels
from .transfer import download_outputs, stage_inputs
from ..storage.base import Store

logger = logging.getLogger(__name__)
SAVE_EVERY = 0.5  # seconds between progress writes to the DB and the Celery backend


class JobRunner:
    """Claim a job, run its prompt on one instance, and record how it ended."""

    def __init__(self, job_id: str, instance: Instance, client: ComfyClient, store: Store,
                 r: redis.Redis, report: Callable[[dict[str, Any]], None] | None = None,
                 inputs: Store | None = None, time_limits: dict[str, float | None] | None = None,
                 close_intake: Callable[[], None] | None = None, hostname: str | None = None) -> None:
        self.job_id = job_id
        self.instance = instance
        self.client = client
        self.store = store
        self.inputs = inputs or current_app.extensions["stores"].inputs
        self.time_limits = time_limits or {}
        self.redis = r
        self.report = report
        self.close_intake = close_intake or (lambda: None)
        self.hostname = hostname
        self.adopted: ComfyClient | None = None  # a dead worker's instance whose prompt this run follows
        self.cancelling = False
        self.submitted = False  # from here on, the instance may hold the prompt
        self.placed = False  # an earlier run placed this job's prompt ahead (comfyq.worker.placement)
        self.posted_here = False  # ... from this very process, whose websocket gets the prompt's messages
        self.deadline = SoftDeadline(self.time_limits.get("soft"))
        depth = int(current_app.config["LOOKAHEAD"])
        self.placer = Placer(instance, client, self.inputs, r, hostname, depth,
                             current_app.config["INSTANCES"]) if depth > 1 else None
        self._saved_at = time.monotonic()

    def run(self) -> str:
        """Run the job unless it is terminal or taken; return the status it ended in."""
        begun = self._quietly(lookahead.begin, self.redis, self.instance.name, self.job_id) \
            if self.placer is not None else (False, None)
        unsure = begun is None  # Redis could not say whether the prompt was placed: look on the instance first
        handed, owner = begun or (False, None)
        if handed:
            return "handed back"  # this worker sent the job to its queue again: that message runs it
        placed_here = owner == self.instance.name
        self.posted_here = self.job_id in POSTED_HERE
        POSTED_HERE.discard(self.job_id)
        job = db.session.get(Job, self.job_id)
        if job is None or job.status == JobStatus.PENDING:  # sent just before its admission (or row) commits
            job = self._admitted()
            if job is not None and job.status == JobStatus.PENDING:
                logger.warning("job %s was sent but its admission never committed; dropping its task", self.job_id)
                return "not admitted"
        if job is None:
            logger.warning("job %s does not exist; dropping its task", self.job_id)
            return "missing"
        if is_terminal(job.status):
            if placed_here:  # cancelled (or ended otherwise) while its prompt waited on the instance
                self._let_go(job.status)
            elif owner is not None:  # placed by a worker that may be gone: nobody else would stop it
                claim.let_go_elsewhere(self.redis, owner, job.id, job.status)
            return job.status
        if placed_here and job.status == JobStatus.RUNNING and job.instance != self.instance.name:
            self._let_go("running elsewhere")  # taken over before its run came: the copy here must not run too
        self.placed = placed_here and job.status == JobStatus.QUEUED
        self.news = RunNews(job, self.redis)  # the announcer's path for this run's progress and outputs
        resume = job.status == JobStatus.RUNNING and job.instance == self.instance.name
        if job.status == JobStatus.RUNNING and not resume and job.instance in current_app.config["INSTANCES"]:
            other = current_app.config["INSTANCES"][job.instance]
            if lease.is_alive(self.redis, other.name):
                # Its prompt may still run there: only that instance's worker may reattach.
                return recovery.hand_over(job, other, self.limits)
            resume = self._adopt(job, other)
        if job.status == JobStatus.QUEUED and owner is not None and not self.placed:
            elsewhere = claim.placed_elsewhere(self.redis, job, owner, self.hostname, self.limits)
            if isinstance(elsewhere, str):
                return elsewhere
            if elsewhere is not None:  # its worker is gone: follow its prompt there
                self.instance, self.client, self.adopted = elsewhere[0], elsewhere[1], elsewhere[1]
                resume = True
        if self.placed and (refused := prompts.refusal(self.redis, self.instance)) is not None \
                and claim.take_back(self.client, job.id):
            self._quietly(placements.unplace, self.redis, self.instance.name, job.id)
            self.close_intake()  # placed before the instance turned unfit: nothing ran, so no attempt is used
            return recovery.refused(job, self.instance, refused, self.limits)
        if not resume:
            refused = None if self.placed else prompts.refusal(self.redis, self.instance)
            if refused is not None:  # stuck or unhealthy: take no work until it is fit again
                self.close_intake()
                return recovery.refused(job, self.instance, refused, self.limits)
            if not transition(job.id, JobStatus.RUNNING, [JobStatus(job.status)], instance=self.instance.name,
                              prompt_id=job.id, attempts=Job.attempts + 1, progress=None, worker=self.hostname):
                if self.placed:  # cancelled between the read and the claim
                    self._let_go("taken")
                return "taken"
            if self.placed:
                self._quietly(placements.unplace, self.redis, self.instance.name, job.id)
        labels = node_labels(current_app.extensions["templates"], job.template, job.template_version)
        self.tracker = ProgressTracker(job.workflow, labels)
        self.tracker.state["time_limits"] = self.time_limits  # as the worker enforces them
        self._quietly(instances.set_running, self.redis, self.instance.name, job.id)
        # A resumed, adopted or placed prompt may be on the instance already.
        self.submitted = resume or self.placed or unsure
        try:
            return self._finish(job, self._execute(job, self.submitted))
        except (PromptRejected, ExecutionFailed, ExecutionInterrupted, PromptLost, ComfyProtocolError) as exc:
            return self._end(*prompts.prompt_failure(exc, self.cancelling))
        except SoftTimeLimitExceeded:
            self._stop_prompt()
            self._discard_outputs()  # of a download the limit cut short
            stuck = not self._left_after_interrupt()
            if stuck:
                self._mark_stuck()
            return recovery.past_soft_limit(job.id, self.instance.name if stuck else None, **self._end_fields())
        except (ComfyUnreachable, ComfyTimeout) as exc:
            # Not submitted, the instance cannot hold the prompt; submitted, it may run there still unless it is down.
            down = self.submitted and prompts.instance_down(self.client)
            if down or (not self.submitted and job.queue != self.instance.queue):
                self.close_intake()  # until the health check finds the instance back
            return recovery.unreachable(job, self.instance, f"instance {self.instance.name}: {exc}",
                                        submitted=self.submitted, down=down, limits=self.limits,
                                        **self._end_fields())
        finally:
            self._quietly(instances.set_running, self.redis, self.instance.name, None)
            if self.adopted is not None:
                self.adopted.close()

    def _admitted(self) -> Job | None:
        """Wait for the commit of the admission that sent this job; return the job (comfyq.worker.claim)."""
        return claim.wait_admitted(self.job_id)

    @property
    def limits(self) -> tuple[float | None, float | None]:
        """Return this run's (soft, hard) time limits, which a message sending the job again carries."""
        return self.time_limits.get("soft"), self.time_limits.get("hard")

    def _end_fields(self) -> dict[str, Any]:
        """Return what an end of this run records besides its status and error."""
        return {"progress": dict(self.tracker.state), "worker": self.hostname}

    def _adopt(self, job: Job, other: Instance) -> bool:
        """Follow the prompt of a job whose worker died, where it runs; False if that instance lacks it."""
        client = prompts.adopt(job, other, self.hostname)
        if client is None:
            return False
        self.instance, self.client, self.adopted = other, client, client
        return True

    def _let_go(self, status: str) -> None:
        """Withdraw this job's placed prompt, which will not run as this job, and forget the placement."""
        claim.let_go(self.client, self.redis, self.instance.name, self.job_id, status)

    def _interrupt_grace(self) -> float:
        """Return how long a stopped prompt may take to leave the instance."""
        grace = float(current_app.config["INTERRUPT_GRACE"])
        soft, hard = self.time_limits.get("soft"), self.time_limits.get("hard")
        if soft and hard:  # never wait into the hard limit, which would kill this process mid-way
            grace = max(0.5, min(grace, hard - soft - 2.0))
        return grace

    def _left_after_interrupt(self) -> bool:
        """Wait the interrupt grace for the stopped prompt to leave the instance; return whether it did."""
        return prompts.prompt_left(self.client, self.job_id, self._interrupt_grace())

    def _mark_stuck(self) -> None:
        """Record that the instance still runs this job's prompt, and take no shared work until it is freed."""
        logger.error("job %s: instance %s ignored the interrupt; marking it stuck", self.job_id, self.instance.name)
        # Marked as already past its grace: a supervised instance is restarted at once.
        instances.mark_stuck(self.redis, self.instance.name, self.job_id,
                             waited=float(current_app.config["INTERRUPT_GRACE"]))
        self.close_intake()

    def _execute(self, job: Job, resume: bool) -> dict[str, Any]:
        """Submit (or reattach to) the prompt and follow it to its end."""
        self.client.connect()
        where = self.client.find_prompt(job.id) if resume else "unknown"
        if where == "done":
            entry = self.client.history(job.id) or {}
            if self.placed and (began := history_start(entry)) is not None:
                set_started(job.id, as_datetime(began))
            return outcome(job.id, entry, self.client.base_url)
        if where == "unknown":
            self._submit(job)
        # ComfyUI sends a prompt's messages only to the client that queued it: a reattached one polls each second.
        # A prompt this process placed was queued by its client, whose messages wait on its socket.
        return self.client.follow(job.id, self._on_event, poll=self._poll,
                                  silence_check=None if where == "unknown" or self.posted_here else 1.0)

    def _submit(self, job: Job) -> None:
        """POST the prompt; after an uncertain answer, look it up instead of posting twice."""
        stage_inputs(self.client, self.inputs, list(job.inputs or ()))
        self.submitted = True
        try:
            self.client.queue_prompt(job.workflow, job.id)
        except ComfyConnectFailed:
            self.submitted = False  # the request never left, so the instance cannot hold the prompt
            raise
        except (ComfyUnreachable, ComfyTimeout):
            if self.client.find_prompt(job.id) == "unknown":
                raise

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        """Announce one execution message and, throttled, record the progress and hand it to the announcer."""
        if kind == "execution_start":
            began = execution_start(data)
            self.deadline.begin(began)
            if self.placed:  # it began when the prompt ahead of it ended, not when it was placed
                set_started(self.job_id, as_datetime(began))
        event = self.tracker.apply(kind, data)
        if event is None:
            return
        self.news.tell(event)
        now = time.monotonic()
        # Throttled: a trivial prompt ends before the first write; the final state is saved at the end.
        if now - self._saved_at >= SAVE_EVERY:
            self._saved_at = now
            set_progress(self.job_id, dict(self.tracker.state))
            if self.report is not None:
                self._quietly(self.report, dict(self.tracker.state))
            self.news.saved(self.tracker.state)  # progress webhooks keep their own pace

    def _discard_outputs(self) -> None:
        """Remove files this run stored, unless the job succeeded elsewhere with those very files."""
        status = db.session.scalar(select(Job.status).where(Job.id == self.job_id))
        if status != JobStatus.SUCCEEDED:
            self.store.remove_job(self.job_id)

    def _quietly(self, action: Callable[..., Any], *args: Any) -> Any:
        """Run a Redis side effect of the run; a Redis outage is logged and never fails the job."""
        try:
            return action(*args)
        except (redis.RedisError, OSError) as exc:
            logger.warning("job %s: %s failed, Redis is unreachable: %s", self.job_id, action.__name__, exc)
            return None

    def _poll(self) -> None:
        """Stop the prompt once a cancel is requested or its soft limit passed; place the next prompts meanwhile."""
        if not self.cancelling and self._quietly(events.cancel_requested, self.redis, self.job_id):
            self.cancelling = True
            self._stop_prompt()
        self.deadline.check()
        if self.placer is not None and not self.cancelling and self.adopted is None:
            self.placer.step(self.job_id)

    def _stop_prompt(self) -> None:
        """Drop this job's prompt if pending, and interrupt it if it is the one running."""
        recovery.stop_prompt(self.client, self.job_id)

    def _end(self, status: JobStatus, error: dict[str, Any]) -> str:
        """Record how the prompt ended the job (a no-op if the job was cancelled meanwhile)."""
        db.session.rollback()  # never commit output rows of a run that did not succeed
        if not transition(self.job_id, status, [JobStatus.RUNNING], error=error, **self._end_fields()):
            return "superseded"
        return status.value

    def _finish(self, job: Job, history: dict[str, Any]) -> str:
        """Download and store every output, then mark the job succeeded in the same commit."""
        outputs = download_outputs(job.id, history, self.client, self.store)
        db.session.add_all(outputs)
        if not transition(job.id, JobStatus.SUCCEEDED, [JobStatus.RUNNING], error=None,
                          progress=dict(self.tracker.state), worker=self.hostname):
            self._discard_outputs()
            return "superseded"
        return JobStatus.SUCCEEDED.value
