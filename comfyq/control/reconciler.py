"""Find jobs whose recorded state and reality disagree, and repair them; beat runs this on the control queue.

- ``queued`` in the database with no broker message anywhere (Redis lost its
  data, or an enqueue died half-way) → enqueue it again;
- ``running`` with no broker message anywhere (Redis lost the message its
  worker held) → send it again to its instance, whose run follows the prompt;
- ``running`` with no live worker on it, past its hard limit → stop its prompt,
  end it ``timed_out`` and release the instance;
- ``pending`` while its owner has room (an admission after a job's end was
  missed) → admit it;
- queue-position sets that disagree with the database → rebuild them.

What becomes of a lost or abandoned job is the recovery policy's to decide
(comfyq.jobs.recovery), as for a worker that finds it; the broker's queues are
read through comfyq.jobs.broker. Each repair is a guarded UPDATE, and one pass
runs at a time (a Redis lock), so a repair happens once however many
reconcilers run.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis
from flask import current_app
from sqlalchemy import func, select, update

from ..submission import admission
from ..jobs import broker, positions, recovery
from ..db.extensions import db, get_redis
from ..jobs.machine import JobStatus
from ..db.models import Job, utcnow
from ..metrics.catalogue import REPAIRS
from ..metrics.recorder import count
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
        repaired: dict[str, Any] = {}
        for repair, step in (("admitted", admission.admit_and_dispatch), ("requeued", requeue_lost),
                             ("timed_out", end_abandoned), ("positions_rebuilt", positions.resync)):
            lock.reacquire()  # a fresh 120 s for each step: a slow pass is never joined by a second one
            repaired[repair] = step()
        for repair, done in repaired.items():
            if done:
                count(REPAIRS, len(done), repair=repair)
        return repaired
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
    """Enqueue again every queued or running job, untouched for the grace, that has no broker message."""
    cutoff = utcnow() - timedelta(seconds=float(current_app.config["RECONCILE_GRACE"]))
    candidates = db.session.execute(select(Job.id, Job.updated_at, Job.status).where(
        Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]), Job.updated_at < cutoff)).all()
    if not candidates:
        return []
    client = broker.connect(socket_timeout=10)
    queues = broker.queue_names()
    if not _maybe_missing(client, queues, len(candidates)):
        return []
    present = broker.task_ids(client, queues)
    requeued = []
    for job_id, seen, status in candidates:
        if job_id in present:
            continue
        # Guarded by the time we read: if anything touched the job since, leave it to the next pass.
        moved = db.session.execute(update(Job).where(
            Job.id == job_id, Job.status == status, Job.updated_at == seen,
        ).values(updated_at=utcnow()).execution_options(synchronize_session=False))
        if moved.rowcount != 1:
            db.session.rollback()
            continue
        db.session.commit()
        job = db.session.get(Job, job_id)  # id, queue and limits: nothing the update changed
        if status == JobStatus.RUNNING.value:
            recovery.run_message_lost(job)
        else:
            recovery.message_lost(job)
        requeued.append(job_id)
    return requeued


def end_abandoned() -> list[str]:
    """End ``timed_out`` every running job past its hard limit that no live worker runs."""
    running = db.session.scalars(select(Job).where(Job.status == JobStatus.RUNNING.value)).all()
    return [job.id for job in running if recovery.abandoned(job)]
