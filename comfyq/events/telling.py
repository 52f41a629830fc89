"""What a job's events say: each event type's payload, and a job's current state told as events.

The event types a client sees, in order: ``queued`` (status pending or
queued, with the queue position), ``started`` (the instance), ``progress``
(node, label, step, overall fraction), ``output`` (files of a node as soon as
it ran), and one final ``succeeded | failed | timed_out | cancelled``. Only
the announcer (comfyq.events.announcer) sends them; the streams tell a job's
state from the database with the same shapes when its log cannot.
"""
from __future__ import annotations

import json
from typing import Any, Iterable
from urllib.parse import quote

from sqlalchemy import select

from .log import FINAL_TYPES
from ..db.extensions import db
from ..jobs.machine import TERMINAL, JobStatus, Moved
from ..db.models import Job, Output
from ..jobs.positions import position
from .progress import public_progress


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


def moved_event(moved: Moved) -> dict[str, Any] | None:
    """Return the event a move tells, from the move itself (its outputs read in its transaction)."""
    if moved.to == JobStatus.QUEUED:  # back in its queue after a lost instance
        return {"type": "queued", "status": moved.to.value, "position": None, "requeued": True}
    if moved.to == JobStatus.RUNNING:
        return started_event(moved.instance, moved.attempts)
    if moved.to in TERMINAL:
        outputs = db.session.scalars(select(Output).where(Output.job_id == moved.job_id).order_by(Output.id))
        return final_event(moved.job_id, moved.to.value, moved.error, outputs)
    return None
