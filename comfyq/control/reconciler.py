"""Repair jobs whose recorded state and reality disagree; Celery beat runs this on the control queue.

- ``queued`` in the database with no broker message anywhere (Redis lost its
  data, or an enqueue died half-way) → enqueue it again;
- ``running`` with no live worker on it, past its hard limit → stop its prompt,
  end it ``timed_out`` and release the instance;
- ``pending`` while its owner has room (an admission after a job's end was
  missed) → admit it;
- queue-position sets that disagree with the database → rebuild them.

Each repair is a guarded UPDATE, and one pass runs at a time (a Redis lock),
so a repair happens once however many reconcilers run. The broker's queues are
read through comfyq.jobs.broker.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis
from flask import current_app
from sqlalchemy import func, select, update

from ..submission import admission
from ..fleet import instances, lease
from ..jobs import broker, positions
from ..db.extensions import db, get_redis
from ..jobs.machine import JobStatus, transition
from ..db.models import Job, aware, utcnow
from ..worker.recovery import stop_prompt_on
from ..webhooks.deliveries import pending_count as pending_webhooks

logger = logging.getLogger(__name__)
LOCK_KEY = "comfyq:reconcile:lock"
FULL_SCAN_BELOW = 1000  # candidates; beyond this, scan the broker only when its message count is short


def reconcile() -> dict[str, Any]:
    """Run one repair pass unless another is running; return what it repaired."""
    lock = get_redis().lock(LOCK_KEY, timeout=120, blocking=False)
    if not lock.acquire(blocking=False):
        return {"skipped": "another pass is running"}
    try:
        return {"admitted": admission.admit_and_dispatch(), "requeued": requeue_lost(),
                "timed_out": end_abandoned(), "positions_rebuilt": positions.resync()}
    finally:
        try:
            lock.release()
        except redis.RedisError:
            pass  # expired or lost with a Redis restart: nothing to release


def _maybe_missing(client: redis.Redis, queues: list[str], candidates: int) -> bool:
    """Tell whether the broker may lack a message: always for a short backlog, else by counting."""
    if candidates <= FULL_SCAN_BELOW:
        return True
    # Webhook deliveries waiting to be sent or retried hold messages too, with no job behind them.
    messages = broker.message_count(client, queues) - pending_webhooks()
    live = db.session.scalar(select(func.count()).select_from(Job).where(
        Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))) or 0
    return messages < live


def requeue_lost() -> list[str]:
    """Enqueue again every queued job, older than the grace, that has no broker message."""
    cutoff = utcnow() - timedelta(seconds=float(current_app.config["RECONCILE_GRACE"]))
    candidates = db.session.execute(select(Job.id, Job.updated_at).where(
        Job.status == JobStatus.QUEUED.value, Job.updated_at < cutoff)).all()
    if not candidates:
        return []
    client = broker.connect(socket_timeout=10)
    queues = broker.queue_names()
    if not _maybe_missing(client, queues, len(candidates)):
        return []
    present = broker.task_ids(client, queues)
    requeued = []
    for job_id, seen in candidates:
        if job_id in present:
            continue
        # Guarded by the time we read: if anything touched the job since, leave it to the next pass.
        moved = db.session.execute(update(Job).where(
            Job.id == job_id, Job.status == JobStatus.QUEUED.value, Job.updated_at == seen,
        ).values(updated_at=utcnow()).execution_options(synchronize_session=False))
        if moved.rowcount != 1:
            db.session.rollback()
            continue
        db.session.commit()
        broker.enqueue(db.session.get(Job, job_id))  # id, queue and limits: nothing the update changed
        logger.warning("reconciler: job %s was queued without a broker message; enqueued it again", job_id)
        requeued.append(job_id)
    return requeued


def end_abandoned() -> list[str]:
    """End ``timed_out`` every running job past its hard limit that no live worker runs."""
    config = current_app.config
    r, now = get_redis(), utcnow()
    ended = []
    for job in db.session.scalars(select(Job).where(Job.status == JobStatus.RUNNING.value)).all():
        hard = float(job.soft_time_limit or config["SOFT_TIME_LIMIT"]) + float(config["TIME_LIMIT_GRACE"])
        if job.started_at is None or aware(job.started_at) + timedelta(seconds=hard) > now:
            continue
        if job.instance and lease.is_alive(r, job.instance) and instances.running_job(r, job.instance) == job.id:
            continue  # its worker runs it: Celery's hard limit ends it there
        error = {"type": "timed_out", "message": f"the job ran past its hard limit ({hard:g} s) with no live "
                                                 "worker on it; the reconciler ended it"}
        if not transition(job.id, JobStatus.TIMED_OUT, [JobStatus.RUNNING], error=error):
            continue
        instance = config["INSTANCES"].get(job.instance or "")
        if instance is not None:
            stop_prompt_on(instance, job.id)
            if instances.running_job(r, instance.name) == job.id:
                instances.set_running(r, instance.name, None)
        logger.warning("reconciler: job %s ran past its hard limit without a worker; timed out", job.id)
        ended.append(job.id)
    return ended
