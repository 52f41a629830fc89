"""Cancel a job: revoke it while queued, interrupt it while running."""
from __future__ import annotations

import logging
from typing import Any, Mapping

import redis
from flask import current_app

from ..events import log as events
from ..errors import Conflict, NotFound
from ..db.extensions import db, get_redis
from ..fleet import placements
from ..jobs import broker
from ..jobs.machine import JobStatus, transition
from ..db.models import Job, User
from ..jobs.queries import get_job

logger = logging.getLogger(__name__)


def cancel_flag_ttl(config: Mapping[str, Any]) -> int:
    """Return how long a cancel flag must live: as long as the longest job may run."""
    return int(config["MAX_TIME_LIMIT"] + config["TIME_LIMIT_GRACE"]) + 60


def cancel_job(job_id: str, user: User) -> Job:
    """Move a pending, queued or running job ``user`` may see to ``cancelled`` and stop its work; return it."""
    get_job(job_id, user)  # someone else's job is "not found", never cancelled
    reason = {"type": "cancelled", "message": "cancelled by request"}
    if transition(job_id, JobStatus.CANCELLED, [JobStatus.QUEUED, JobStatus.PENDING], error=reason):
        # The worker would also skip it (terminal), but revoking drops the message early. A prompt placed ahead
        # is withdrawn by the worker that placed it, whose run of the job must come to do so if nothing else did.
        # Read after the move: a placement made since then sees the job cancelled and withdraws its prompt.
        if _placed(job_id) is None:
            broker.revoke(job_id)
    elif transition(job_id, JobStatus.CANCELLED, [JobStatus.RUNNING], error=reason):
        # The worker that owns the prompt sees the flag and interrupts only this prompt.
        events.request_cancel(get_redis(), job_id, cancel_flag_ttl(current_app.config))
    job = db.session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    if job.status != JobStatus.CANCELLED:
        raise Conflict(f"job {job_id} already ended as {job.status}; only pending, queued or running jobs can be cancelled")
    return job


def _placed(job_id: str) -> str | None:
    """Return the instance a queued job's prompt waits on, placed ahead; None if none or Redis cannot tell."""
    try:
        return placements.placed_on(get_redis(), job_id)
    except (redis.RedisError, OSError):
        return None
