"""What becomes of a job whose worker, child or instance died, or whose limits passed: one policy.

The runner, the GPU worker's signal handlers and the reconciler say what
happened; this module chooses what follows and does it, with guarded
transitions (an end refunds the job through the transition) and messages sent
through comfyq.jobs.broker. One counter says how often a job was tried: the
row's ``attempts``, one per run that claimed it, against ``COMFYQ_MAX_ATTEMPTS``.

- **reattach**: the prompt may still run on its instance. A fresh message goes
  to that instance's queue and its run follows the prompt, using no attempt
  (a crashed child's message comes back by itself and does the same); one that
  would follow it past the job's hard limit times the job out instead.
- **requeue**: the instance could not take the prompt, or went down with it:
  back to ``queued`` and to the job's queue for any capable instance while
  attempts remain, else the job fails. A queued job whose broker message was
  lost is sent again.
- **wait**: a job pinned to an unfit instance (stuck, unhealthy, restarting)
  waits on that instance's queue; nothing ran, so no attempt is used.
- **fail**: no attempts left, or the task died without an outcome.
- **time out**: the soft limit passed, the hard limit killed the child, or the
  job ran past its hard limit with no live worker on it (the reconciler).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from billiard.exceptions import WorkerLostError
from celery.exceptions import TimeLimitExceeded
from flask import current_app
from sqlalchemy import select

from . import broker
from .machine import JobStatus, is_terminal, transition
from ..comfy import ComfyClient, ComfyError
from ..config.settings import Instance
from ..db.extensions import db, get_redis
from ..db.models import Job, aware, utcnow
from ..fleet import instances, lease

logger = logging.getLogger(__name__)
AGAIN_AFTER = 2.0  # seconds before a job that waits, reattaches or met a passing outage is tried again


def stop_prompt(client: ComfyClient, prompt_id: str) -> None:
    """Drop a prompt if pending and interrupt it if running; log, never raise, if the instance is gone."""
    try:
        client.delete_from_queue([prompt_id])  # first, so a prompt starting meanwhile is still caught
        client.interrupt(prompt_id)
    except ComfyError as exc:
        logger.warning("could not stop prompt %s on %s: %s", prompt_id, client.base_url, exc)


def stop_prompt_on(instance: Instance, prompt_id: str) -> None:
    """Stop a prompt on ``instance`` with a short-lived client of its own; never raise."""
    with ComfyClient(instance.url, connect_timeout=2.0, read_timeout=5.0, retries=0) as client:
        stop_prompt(client, prompt_id)


def hard_limit(soft_time_limit: float | None) -> float:
    """Return how long one run of a job with ``soft_time_limit`` may last: that limit and the grace."""
    config = current_app.config
    return float(soft_time_limit or config["SOFT_TIME_LIMIT"]) + float(config["TIME_LIMIT_GRACE"])


def _overdue(started_at: datetime | None, soft_time_limit: float | None) -> float | None:
    """Return the hard limit a run started at ``started_at`` has passed, or None while it has time left."""
    hard = hard_limit(soft_time_limit)
    if started_at is None or aware(started_at) + timedelta(seconds=hard) > utcnow():
        return None
    return hard


def _end(job_id: str, status: JobStatus, error: dict[str, Any], instance: Instance | None = None,
         **fields: Any) -> str:
    """End a running job ``status`` and stop its prompt on ``instance``; return the status, or "superseded"."""
    if not transition(job_id, status, [JobStatus.RUNNING], error=error, **fields):
        return "superseded"
    if instance is not None:
        stop_prompt_on(instance, job_id)  # its run cannot any more; the instance would stay busy
    return status.value


def hand_over(job: Job, owner: Instance, limits: broker.Limits | None = None) -> str:
    """Send a job running on ``owner``, whose worker lives, to that worker: only it may reattach."""
    broker.enqueue(job, owner.queue, countdown=0, limits=limits)
    return "handed over"


def refused(job: Job, instance: Instance, reason: str, limits: broker.Limits | None = None) -> str:
    """Send back a job the unfit ``instance`` must not start: to any capable instance, or to wait for its own."""
    if job.queue != instance.queue:
        broker.enqueue(job, job.queue, countdown=0, limits=limits)
        return "requeued"
    logger.info("job %s waits for its instance: %s", job.id, reason)
    broker.enqueue(job, job.queue, countdown=AGAIN_AFTER, limits=limits)
    return "waiting"


def reattach(job: Job, instance: Instance, reason: str, limits: broker.Limits | None = None, **fields: Any) -> str:
    """Come back to ``instance``, where the job's prompt may still run, and follow it; past its hard limit, end it."""
    db.session.rollback()  # nothing the interrupted run left in the session is kept
    run = db.session.execute(select(Job.started_at, Job.soft_time_limit).where(Job.id == job.id)).first()
    hard = _overdue(*run) if run is not None else None
    if hard is not None:
        error = {"type": "timed_out", "message": f"the job ran past its hard limit ({hard:g} s) while its prompt on "
                                                 f"{instance.name} could not be followed: {reason}"}
        return _end(job.id, JobStatus.TIMED_OUT, error, instance, **fields)
    broker.enqueue(job, instance.queue, countdown=AGAIN_AFTER, limits=limits)
    return "reattaching"


def unreachable(job: Job, instance: Instance, message: str, *, submitted: bool, down: bool,
                limits: broker.Limits | None = None, **fields: Any) -> str:
    """Decide for a run whose ``instance`` stopped answering: reattach, requeue, or fail with no attempts left.

    ``submitted``: the instance may hold the prompt; ``down``: it failed its
    probes since. ``fields`` go with a failure (the run's progress and worker).
    """
    if submitted and not down:  # it may run there still: come back to that instance and follow it
        return reattach(job, instance, message, limits, **fields)
    db.session.rollback()
    attempts = db.session.scalar(select(Job.attempts).where(Job.id == job.id)) or 0
    limit = int(current_app.config["MAX_ATTEMPTS"])
    if not submitted:  # the instance cannot hold the prompt: any capable instance may run it
        error = {"type": "instance_unavailable", "message": message}
        if attempts >= limit:
            error["message"] = f"no instance could run the job in {attempts} attempts: {message}"
            return _end(job.id, JobStatus.FAILED, error, **fields)
        countdown = min(2.0 ** attempts, 30.0) if job.queue == instance.queue else 0.0
    else:
        error = {"type": "instance_lost", "message": f"{message}; the instance went down while running the job "
                                                    f"(attempt {attempts} of {limit})"}
        if attempts >= limit:
            error["message"] += ", giving up"
            return _end(job.id, JobStatus.FAILED, error, **fields)
        countdown = 0.0
    if not transition(job.id, JobStatus.QUEUED, [JobStatus.RUNNING], error=error):
        return "superseded"
    broker.enqueue(job, job.queue, countdown=countdown, limits=limits)
    return "requeued"


def past_soft_limit(job_id: str, stuck_on: str | None = None, **fields: Any) -> str:
    """End a job whose run passed its soft limit ``timed_out`` (its run stopped the prompt, or marked ``stuck_on``)."""
    db.session.rollback()  # never commit what a run that did not succeed left in the session
    message = "the job ran past its time limit"
    if stuck_on is not None:
        message += f"; its node ignored the interrupt, so instance {stuck_on} is being freed"
    return _end(job_id, JobStatus.TIMED_OUT, {"type": "timed_out", "message": message}, **fields)


def try_again(job_id: str, exc: BaseException, limits: broker.Limits | None = None) -> str:
    """Try a job again, as it was, after an outage of Redis, the broker or the store met its run."""
    db.session.rollback()
    job = db.session.get(Job, job_id, populate_existing=True)
    if job is None or is_terminal(job.status):
        return job.status if job is not None else "missing"
    logger.warning("job %s: %s; trying again in %g s", job_id, exc, AGAIN_AFTER)
    where = current_app.config["INSTANCES"].get(job.instance or "")
    if job.status == JobStatus.RUNNING and where is not None:
        return reattach(job, where, str(exc), limits)
    broker.enqueue(job, job.queue, countdown=AGAIN_AFTER, limits=limits)
    return "requeued"


def end_orphaned(job_id: str, exc: BaseException, instance: Instance | None) -> JobStatus | None:
    """End a job whose task died without an outcome, stopping its prompt; return how it ended it, or None."""
    if isinstance(exc, WorkerLostError):
        return None  # a lost child's message goes back to its queue by itself, and its next run reattaches
    if isinstance(exc, TimeLimitExceeded):
        status, message = JobStatus.TIMED_OUT, (f"the job ran past its hard time limit ({exc}); "
                                                "its worker process was killed")
    else:
        status, message = JobStatus.FAILED, f"the task ended without an outcome: {exc!r}"
    if _end(job_id, status, {"type": status.value, "message": message}, instance) != status.value:
        return None
    logger.warning("job %s ended %s by the failure handler: %r", job_id, status, exc)
    return status


def message_lost(job: Job) -> None:
    """Send a queued job whose broker message was lost again, as it was (no attempt is used)."""
    broker.enqueue(job)  # id, queue and limits: the job's own
    logger.warning("reconciler: job %s was queued without a broker message; enqueued it again", job.id)


def run_message_lost(job: Job) -> None:
    """Send a running job whose broker message was lost to its instance: its run there follows the prompt.

    Harmless if a run still holds the job: the second message waits behind it on
    that one worker and, the job ended, ends at once (no attempt is used).
    """
    instance = current_app.config["INSTANCES"].get(job.instance or "")
    broker.enqueue(job, instance.queue if instance is not None else job.queue)
    logger.warning("reconciler: job %s was running without a broker message; sent it again to follow its prompt",
                   job.id)


def abandoned(job: Job) -> bool:
    """End ``timed_out`` a running job past its hard limit that no live worker runs; return whether it did."""
    r = get_redis()
    hard = _overdue(job.started_at, job.soft_time_limit)
    if hard is None:
        return False
    if job.instance and lease.is_alive(r, job.instance) and instances.running_job(r, job.instance) == job.id:
        return False  # its worker runs it: Celery's hard limit ends it there
    error = {"type": "timed_out", "message": f"the job ran past its hard limit ({hard:g} s) with no live "
                                             "worker on it; the reconciler ended it"}
    instance = current_app.config["INSTANCES"].get(job.instance or "")
    if _end(job.id, JobStatus.TIMED_OUT, error, instance) != JobStatus.TIMED_OUT.value:
        return False
    if instance is not None and instances.running_job(r, instance.name) == job.id:
        instances.set_running(r, instance.name, None)
    logger.warning("reconciler: job %s ran past its hard limit without a worker; timed out", job.id)
    return True
