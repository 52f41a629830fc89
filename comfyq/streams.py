"""What an event stream opens with: the events a client missed, or the current state; and where it goes on.

A stream without ``Last-Event-ID`` (or with one the log no longer covers)
opens with the current state, told as events (``job_events.current``) under
the log's latest number; one with a covered ``Last-Event-ID`` opens with
exactly the logged events after it. Either way the opening says from which
number the server holding the connection continues (``Opening.hold``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import select

from . import events
from .errors import Unavailable
from .extensions import db, get_redis
from .job_events import FINAL_TYPES, current
from .jobs import JobStatus
from .models import Job, User

RETRY_MS = 3000  # how long a client waits before reconnecting
OPEN_JOBS_SHOWN = 500  # a user stream opens with the state of at most this many of the user's active jobs


@dataclass
class Opening:
    """A stream's first events and what the holding server needs to go on."""

    log: str
    last: int  # the log number the stream is at
    job_id: str | None  # a job's stream ends with the job; a user's never does
    messages: list[tuple[int | None, str]] = field(default_factory=list)  # (id, JSON body)
    done: bool = False
    status: str | None = None
    position: int | None = None

    def hold(self) -> dict[str, Any]:
        """Return what the holding server continues from."""
        return {"log": self.log, "after": self.last, "job": self.job_id, "status": self.status,
                "position": self.position}


def last_event_id(raw: str | None) -> int | None:
    """Return the number in a ``Last-Event-ID`` header, or None for none or a malformed one (open afresh)."""
    raw = (raw or "").strip()
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _told(number: int, job: Job, event: dict[str, Any]) -> tuple[int | None, str]:
    """Return one current-state event as a message under the log's latest number."""
    body = json.dumps({**event, "job_id": job.id}, separators=(",", ":"), default=str)
    return (number or None), body


def _replay(r: redis.Redis, opening: Opening, after: int) -> bool:
    """Open with the logged events after ``after``, if the log still has them all; return whether it did."""
    if not events.resumable(r, opening.log, after):
        return False
    opening.messages = [(n, body) for n, body in events.read_after(r, opening.log, after)]
    opening.last = opening.messages[-1][0] if opening.messages else after
    if opening.job_id is not None:
        kinds = [json.loads(body).get("type") for _, body in opening.messages]
        opening.done = any(kind in FINAL_TYPES for kind in kinds)
    return True


def open_job(job: Job, last_id: str | None) -> Opening:
    """Open the event stream of one job the caller may see."""
    opening = Opening(events.job_log(job.id), 0, job.id)
    after = last_event_id(last_id)
    try:
        r = get_redis()
        if after is not None and _replay(r, opening, after):
            # The holding server learns positions and moves from here on; it needs where the job stands.
            opening.status = db.session.scalar(select(Job.status).where(Job.id == job.id))
            return opening
        opening.last = events.last_number(r, opening.log)  # before the state, so nothing falls in between
    except (redis.RedisError, OSError) as exc:
        raise Unavailable(f"event streams need Redis, which is unreachable ({exc}); poll GET /v1/jobs/{job.id} "
                          "or try again") from exc
    db.session.refresh(job)
    told = current(job)
    opening.messages = [_told(opening.last, job, event) for event in told]
    opening.status, opening.done = job.status, job.status in FINAL_TYPES
    if job.status in (JobStatus.PENDING, JobStatus.QUEUED):
        opening.position = told[0]["position"]
    return opening


def open_user(user: User, last_id: str | None) -> Opening:
    """Open the stream of every event of every job of ``user``."""
    opening = Opening(events.user_log(user.id), 0, None)
    after = last_event_id(last_id)
    try:
        r = get_redis()
        if after is not None and _replay(r, opening, after):
            return opening
        opening.last = events.last_number(r, opening.log)
    except (redis.RedisError, OSError) as exc:
        raise Unavailable(f"event streams need Redis, which is unreachable ({exc}); try again") from exc
    active = db.session.scalars(
        select(Job).where(Job.user_id == user.id, Job.status.in_((JobStatus.QUEUED.value, JobStatus.RUNNING.value)))
        .order_by(Job.created_at.desc()).limit(OPEN_JOBS_SHOWN)).all()
    opening.messages = [_told(opening.last, job, event) for job in reversed(active) for event in current(job)]
    return opening


def render(number: int | None, body: str) -> bytes:
    """Return one Server-Sent Event: its id (when it has one), its type and its JSON data."""
    kind = json.loads(body).get("type", "message")
    head = f"id: {number}\n" if number is not None else ""
    return f"{head}event: {kind}\ndata: {body}\n\n".encode()


def render_opening(opening: Opening) -> bytes:
    """Return the first bytes of a stream: the reconnection delay, then the opening events."""
    return f"retry: {RETRY_MS}\n\n".encode() + b"".join(render(n, body) for n, body in opening.messages)
