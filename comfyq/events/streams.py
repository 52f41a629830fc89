"""What an event stream opens with: the events a client missed, or the current state; and where it goes on.

A stream with a ``Last-Event-ID`` its log still covers opens with exactly the
logged events after it. Otherwise it opens with the current state: folded
from the job's log while the log holds it whole, else told from the database
(``telling.current``) under the log's latest id; a job that ended is told
by its final event alone. Either way the opening says from which id the
server holding the connection continues (``Opening.hold``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import select

from . import log as events
from ..errors import Unavailable
from ..db.extensions import db, get_redis
from .log import FINAL_TYPES
from .telling import current, final_event, told, waiting_event
from ..jobs.machine import JobStatus
from ..db.models import Job, User
from .sse import kind_of, render

RETRY_MS = 3000  # how long a client waits before reconnecting
OPEN_JOBS_SHOWN = 500  # a user stream opens with the state of at most this many of the user's active jobs
WAITING = (JobStatus.PENDING.value, JobStatus.QUEUED.value)
Message = tuple[str | None, str]  # (SSE id, JSON body)


@dataclass
class Opening:
    """A stream's first events and what the holding server needs to go on."""

    log: str
    last: str  # the id in the log the stream is at
    job_id: str | None  # a job's stream ends with the job; a user's never does
    messages: list[Message] = field(default_factory=list)
    done: bool = False
    status: str | None = None

    def hold(self) -> dict[str, Any]:
        """Return what the holding server continues from."""
        return {"log": self.log, "after": self.last, "job": self.job_id, "status": self.status}


def last_event_id(raw: str | None) -> str | None:
    """Return the id in a ``Last-Event-ID`` header, or None for none or a malformed one (open afresh)."""
    raw = (raw or "").strip()
    return raw if events.EVENT_ID.fullmatch(raw) else None


def fold(logged: list[tuple[str, str]]) -> list[Message]:
    """Tell a job's state from its whole log: its final event, or its latest wait or start, progress and outputs."""
    waited = started = progress = None
    outputs: list[Message] = []
    for event_id, body in logged:
        kind = kind_of(body)
        if kind in FINAL_TYPES:
            return [(event_id, body)]
        if kind == "queued":  # waiting again: what ran before no longer counts
            waited, started, progress, outputs = (event_id, body), None, None, []
        elif kind == "started":
            waited, started, progress, outputs = None, (event_id, body), None, []
        elif kind == "progress":
            progress = (event_id, body)
        elif kind == "output":
            outputs.append((event_id, body))
    kept = [m for m in (waited, started, progress) if m is not None] + outputs
    return sorted(kept, key=lambda m: events.order(m[0] or events.START))


def _told(event_id: str, job: Job, event: dict[str, Any]) -> Message:
    """Return one current-state event as a message under the log's latest id."""
    return (event_id if event_id != events.START else None), told(job.id, event)


def _with_position(opening: Opening, job: Job) -> None:
    """Make a waiting job's opening end with its queue position as it is now."""
    now = waiting_event(job)
    for i in range(len(opening.messages) - 1, -1, -1):
        event_id, body = opening.messages[i]
        if kind_of(body) == "queued":
            opening.messages[i] = (event_id, json.dumps({**json.loads(body), **now}, separators=(",", ":")))
            return
    opening.messages.append(_told(events.START, job, now))


def open_job(job: Job, last_id: str | None) -> Opening:
    """Open the event stream of one job the caller may see."""
    opening = Opening(events.job_log(job.id), events.START, job.id)
    after = last_event_id(last_id)
    from_db = False
    try:
        r = get_redis()
        if after is not None and events.resumable(r, opening.log, after):
            opening.messages, opening.last = list(events.read_after(r, opening.log, after)), after
        elif events.complete(r, opening.log):
            opening.messages = fold(events.read_after(r, opening.log, events.START))
        else:  # the log expired or was trimmed: the state comes from the DB, under the log's latest id
            opening.last, from_db = events.last_id(r, opening.log), True
    except (redis.RedisError, OSError) as exc:
        raise Unavailable(f"event streams need Redis, which is unreachable ({exc}); poll GET /v1/jobs/{job.id} "
                          "or try again") from exc
    db.session.refresh(job)  # after the log: the DB is at least as new
    if from_db:
        opening.messages = [_told(opening.last, job, event) for event in current(job)]
    numbered = [event_id for event_id, _ in opening.messages if event_id is not None]
    opening.last = numbered[-1] if numbered else opening.last
    opening.done = any(kind_of(body) in FINAL_TYPES for _, body in opening.messages)
    if job.status in FINAL_TYPES and not opening.done:  # its final event never made it to the log
        opening.messages.append(_told(opening.last, job, final_event(job.id, job.status, job.error, job.outputs)))
        opening.done = True
    elif job.status in WAITING:
        _with_position(opening, job)
    opening.status = job.status
    return opening


def open_user(user: User, last_id: str | None) -> Opening:
    """Open the stream of every event of every job of ``user``."""
    opening = Opening(events.user_log(user.id), events.START, None)
    after = last_event_id(last_id)
    try:
        r = get_redis()
        if after is not None and events.resumable(r, opening.log, after):
            opening.messages = list(events.read_after(r, opening.log, after))
            opening.last = str(opening.messages[-1][0]) if opening.messages else after
            return opening
        opening.last = events.last_id(r, opening.log)
    except (redis.RedisError, OSError) as exc:
        raise Unavailable(f"event streams need Redis, which is unreachable ({exc}); try again") from exc
    active = db.session.scalars(
        select(Job).where(Job.user_id == user.id, Job.status.in_((*WAITING, JobStatus.RUNNING.value)))
        .order_by(Job.created_at.desc()).limit(OPEN_JOBS_SHOWN)).all()
    opening.messages = [_told(opening.last, job, event) for job in reversed(active) for event in current(job)]
    return opening


def render_opening(opening: Opening) -> bytes:
    """Return the first bytes of a stream: the reconnection delay, then the opening events."""
    return f"retry: {RETRY_MS}\n\n".encode() + b"".join(render(n, body) for n, body in opening.messages)
