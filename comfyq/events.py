"""Job events on Redis pub/sub, and the cancel flag workers watch."""
from __future__ import annotations

import json
from typing import Any

import redis

CHANNEL = "comfyq:job:{}"
CANCEL_KEY = "comfyq:cancel:{}"


def channel(job_id: str) -> str:
    """Return the pub/sub channel carrying one job's events."""
    return CHANNEL.format(job_id)


def publish(r: redis.Redis, job_id: str, event: dict[str, Any]) -> None:
    """Publish one event of a job to its channel."""
    r.publish(channel(job_id), json.dumps(dict(event, job_id=job_id), separators=(",", ":")))


def request_cancel(r: redis.Redis, job_id: str, ttl: int) -> None:
    """Ask whichever worker runs ``job_id`` to interrupt it."""
    r.set(CANCEL_KEY.format(job_id), "1", ex=max(ttl, 1))


def cancel_requested(r: redis.Redis, job_id: str) -> bool:
    """Return whether a cancel was asked for ``job_id``."""
    return bool(r.exists(CANCEL_KEY.format(job_id)))
