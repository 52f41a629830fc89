"""One held event stream: its log's events in order, its job's positions and end, keep-alives.

``comfyq.asgi`` holds a stream with a ``Stream`` once the view has sent its
opening; the process's ``Hub`` fills the stream's mailbox.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable

from flask import Flask
from sqlalchemy import select

from . import log as events
from .log import FINAL_TYPES
from ..db.extensions import db
from .hub import GONE, RESYNC, Follower, Hub, JobState, Published
from .telling import current, told
from ..db.models import Job
from ..jobs import timing
from ..jobs.positions import position
from .sse import kind_of, render

Send = Callable[[dict[str, Any]], Awaitable[None]]
HEARTBEAT = 15.0  # seconds between keep-alive comments on a quiet stream
WAITING = ("pending", "queued")


def state_lookup(flask_app: Flask) -> Callable[[list[str]], dict[str, JobState]]:
    """Return a function giving jobs' status, queue position, start estimate and final event, for a worker thread."""
    def lookup(job_ids: list[str]) -> dict[str, JobState]:
        """Read the jobs' states in one app context, against one snapshot of the fleet."""
        with flask_app.app_context():
            jobs = db.session.scalars(select(Job).where(Job.id.in_(job_ids))).all()
            estimator = timing.snapshot() if any(job.status in WAITING for job in jobs) else None
            states = {}
            for job in jobs:
                where, eta = position(job), None
                start = estimator.start(job.queue, where) if estimator else None
                if start is not None:
                    eta = start.isoformat()
                final = told(job.id, current(job)[0]) if job.status in FINAL_TYPES else None
                states[job.id] = JobState(job.status, where, final, eta)
            return states
    return lookup


class Stream:
    """One held event stream: log messages in log order, position changes, keep-alives."""

    def __init__(self, hub: Hub, hold: dict[str, Any], send: Send) -> None:
        self.hub, self.send = hub, send
        self.last = str(hold["after"])
        self.job = hold.get("job")
        self.follower: Follower = hub.follow(hold["log"], self.job, hold.get("status") in WAITING)
        self.done = False

    async def run(self) -> None:
        """Deliver events until the job's final event, the client leaving, the hub closing or an overflow."""
        try:
            await self.catch_up()
            while not self.done and not self.follower.overflowed:
                try:
                    item = await asyncio.wait_for(self.follower.queue.get(), HEARTBEAT)
                except asyncio.TimeoutError:  # quiet: say so, and read the log in case a message was lost
                    await self.write(b": keep-alive\n\n")
                    await self.catch_up()
                    continue
                if item == GONE:
                    return
                if item == RESYNC:
                    await self.catch_up()
                elif isinstance(item, Published):
                    await self.message(item)
                elif item[0] == "ended":
                    await self.ended(item[1])
                else:
                    await self.position(*item[1:])
        finally:
            self.hub.forget(self.follower)

    async def write(self, chunk: bytes) -> None:
        """Send part of the response."""
        await self.send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def catch_up(self) -> None:
        """Deliver every logged event after the last one delivered."""
        for event_id, body in await self.hub.read_after(self.follower.log, self.last):
            kind = kind_of(body)
            await self.deliver(event_id, kind, render(event_id, body, kind))
            if self.done:
                return

    async def message(self, published: Published) -> None:
        """Deliver an announced event in order: read the log when one was missed, drop one delivered."""
        if published.prev == self.last:
            await self.deliver(published.id, published.kind, published.chunk)
        elif events.order(published.id) > events.order(self.last):
            await self.catch_up()

    async def deliver(self, event_id: str, kind: str, chunk: bytes) -> None:
        """Send one logged event; note whether the job stopped waiting or ended."""
        self.last = event_id
        if self.job is not None:
            self.done = kind in FINAL_TYPES
            # Before the send, which may wait on a slow client: no stale position may follow a start.
            if kind == "queued":  # (back) in a queue
                self.follower.waiting_job = self.job
            elif kind == "started" or self.done:
                self.follower.waiting_job = None
        await self.write(chunk)

    async def ended(self, final: str) -> None:
        """The job ended: deliver the log's final event, or tell it from the DB if it never reached the log."""
        await self.catch_up()
        if not self.done:
            self.done = True
            await self.write(render(None, final))

    async def position(self, status: str, where: int | None, eta: str | None = None) -> None:
        """Send a waiting job's new position (no id: it is not in the log, and resuming never needs it)."""
        if status not in WAITING or self.follower.waiting_job is None:
            return  # moved on: its move is in the log
        body = json.dumps({"type": "queued", "status": status, "position": where, "estimated_start": eta,
                           "job_id": self.job}, separators=(",", ":"))
        await self.write(render(None, body))
