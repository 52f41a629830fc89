"""A job's public events: what each move announces, and a job's current state told as events.

The event types a client sees, in order: ``queued`` (status pending or
queued, with the queue position), ``started`` (the instance), ``progress``
(node, label, step, overall fraction), ``output`` (files of a node as soon as
it ran), and one final ``succeeded | failed | timed_out | cancelled``. Every
move of the state machine is told from the move itself and announced after
its commit (a ``jobs.on_moved`` hook); the runner announces progress and
outputs.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, Iterable
from urllib.parse import quote

import redis
from sqlalchemy import select

from . import log as events
from .log import FINAL_TYPES
from ..db.extensions import db, get_redis
from ..jobs.machine import TERMINAL, JobStatus, Moved
from ..db.models import Job, Output
from ..jobs.positions import position
from .progress import public_progress

logger = logging.getLogger(__name__)


def outputs_told(job_id: str, outputs: Iterable[Output]) -> list[dict[str, Any]]:
    """Return a job's outputs as events and webhooks tell them, each with the API path that downloads it."""
    return [{"name": o.name, "node_id": o.node_id, "size": o.size, "sha256": o.sha256,
             "content_type": o.content_type, "expired": o.expired_at is not None,
             "url": None if o.expired_at is not None else f"/v1/jobs/{job_id}/outputs/{quote(o.name)}"}
            for o in outputs]


def final_event(job_id: str, status: str, error: dict[str, Any] | None,
                outputs: Iterable[Output]) -> dict[str, Any]:
    """Return the last event of an ended job: its outputs, or its error."""
    event: dict[str, Any] = {"type": status, "status": status}
    if status == JobStatus.SUCCEEDED:
        event["outputs"] = outputs_told(job_id, outputs)
    else:
        event["error"] = error
    return event


def started_event(instance: str | None, attempt: int) -> dict[str, Any]:
    """Return the event of a job taken by a worker."""
    return {"type": "started", "instance": instance, "attempt": attempt}


def waiting_event(job: Job, with_position: bool = True) -> dict[str, Any]:
    """Return the event of a pending or queued job, with its queue position."""
    return {"type": "queued", "status": job.status, "position": position(job) if with_position else None}


def current(job: Job) -> list[dict[str, Any]]:
    """Tell a job's state as the events a client would have seen by now (the newest progress only)."""
    if job.status in (JobStatus.PENDING, JobStatus.QUEUED):
        return [waiting_event(job)]
    if job.status in FINAL_TYPES:
        return [final_event(job.id, job.status, job.error, job.outputs)]
    told = [started_event(job.instance, job.attempts)]
    progress = job.progress or {}
    if progress.get("node") is not None:
        told.append({"type": "progress", **public_progress(progress)})
    by_node: dict[str, list[str]] = {}
    for item in progress.get("partial_outputs") or ():
        by_node.setdefault(str(item.get("node")), []).append(item.get("filename"))
    told += [{"type": "output", "node": node, "files": files} for node, files in by_node.items()]
    return told


def told(job_id: str, event: dict[str, Any]) -> str:
    """Return an event of a job as the JSON a stream sends, as publishing would write it (less ``at``)."""
    return json.dumps({**event, "job_id": job_id}, separators=(",", ":"), default=str)


def announce(items: list[tuple[str, str | None, dict[str, Any]]]) -> None:
    """Publish (job id, owner, event) items; a Redis outage is logged, never raised."""
    if not items:
        return
    try:
        events.publish_many(get_redis(), items)
    except (redis.RedisError, OSError) as exc:
        logger.warning("events of %d jobs not published, Redis is unreachable: %s", len(items), exc)


def waiting(jobs: Iterable[Job]) -> None:
    """Announce new pending jobs, or jobs just admitted to a queue (positions follow on the stream)."""
    announce([(job.id, job.user_id, waiting_event(job, with_position=False)) for job in jobs])


def on_moved(moved: Moved) -> Callable[[], None] | None:
    """Tell a move's event from the move itself (in its transaction); publish it once the move commits."""
    if moved.to == JobStatus.QUEUED:  # back in its queue after a lost instance
        event = {"type": "queued", "status": moved.to.value, "position": None, "requeued": True}
    elif moved.to == JobStatus.RUNNING:
        event = started_event(moved.instance, moved.attempts)
    elif moved.to in TERMINAL:
        outputs = db.session.scalars(select(Output).where(Output.job_id == moved.job_id).order_by(Output.id))
        event = final_event(moved.job_id, moved.to.value, moved.error, outputs)
    else:
        return None
    return lambda: announce([(moved.job_id, moved.user_id, event)])
