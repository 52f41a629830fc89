"""ASGI entry, ``uvicorn comfyq.asgi:app``: Flask answers every request; event streams stay open here.

Flask runs in a thread pool (a2wsgi). When its answer carries the
``X-Comfyq-Hold`` header (an event stream's opening, see ``api.streams``),
this layer sends the opening, keeps the connection and follows the stream's
log through the process's ``Hub``: one coroutine per stream, no thread.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import Any, Awaitable, Callable

from a2wsgi import WSGIMiddleware
from flask import Flask
from redis.exceptions import RedisError
from sqlalchemy import select

from . import create_app, events
from .api.streams import HOLD_HEADER, HOLDER_HEADER
from .extensions import db
from .hub import GONE, RESYNC, Follower, Hub, Published
from .events import FINAL_TYPES
from .job_events import final_event
from .models import Job
from .positions import position
from .sse import kind_of, render

logger = logging.getLogger(__name__)
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
HEARTBEAT = 15.0  # seconds between keep-alive comments on a quiet stream
WAITING = ("pending", "queued")
HOLD_KEY = HOLD_HEADER.lower().encode()
HOLDER_KEY = HOLDER_HEADER.lower().encode()


def state_lookup(flask_app: Flask) -> Callable[[list[str]], dict[str, tuple[str, int | None, str | None]]]:
    """Return a function giving jobs' status, queue position and (once ended) final event, for a worker thread."""
    def lookup(job_ids: list[str]) -> dict[str, tuple[str, int | None, str | None]]:
        """Read the jobs' states in one app context."""
        with flask_app.app_context():
            jobs = db.session.scalars(select(Job).where(Job.id.in_(job_ids))).all()
            return {job.id: (job.status, position(job), json.dumps({**final_event(job, job.outputs), "job_id": job.id},
                                                                   separators=(",", ":"), default=str)
                             if job.status in FINAL_TYPES else None) for job in jobs}
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

    async def position(self, status: str, where: int | None) -> None:
        """Send a waiting job's new position (no id: it is not in the log, and resuming never needs it)."""
        if status not in WAITING or self.follower.waiting_job is None:
            return  # moved on: its move is in the log
        body = json.dumps({"type": "queued", "status": status, "position": where, "job_id": self.job},
                          separators=(",", ":"))
        await self.write(render(None, body))


class HoldingApp:
    """Serve the Flask app, holding event streams open instead of ending them."""

    def __init__(self, flask_app: Flask, threads: int = 1) -> None:
        self.flask_app = flask_app
        self.wsgi = WSGIMiddleware(flask_app, workers=threads)  # type: ignore[arg-type]
        self.hub: Hub | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        # Tell the views that this server holds streams (a client cannot say so for itself).
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != HOLDER_KEY]
        scope = {**scope, "headers": [*headers, (HOLDER_KEY, b"1")]}
        hold: dict[str, Any] = {}

        async def intercept(message: dict[str, Any]) -> None:
            """Pass Flask's answer on, but keep a held stream's response open."""
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                for name, value in headers:
                    if name.lower() == HOLD_KEY:
                        hold.update(json.loads(value))
                if hold:  # no length: the body goes on (chunked)
                    headers = [(k, v) for k, v in headers if k.lower() not in (HOLD_KEY, b"content-length")]
                message = {**message, "headers": headers}
            elif hold and message["type"] == "http.response.body" and not message.get("more_body"):
                message = {**message, "more_body": True}
            await send(message)

        await self.wsgi(scope, receive, intercept)  # type: ignore[arg-type]
        if hold:
            await self.follow(hold, receive, send)

    async def follow(self, hold: dict[str, Any], receive: Receive, send: Send) -> None:
        """Hold one stream until it ends, its client leaves or the server stops; then end the response."""
        if self.hub is None:
            self.hub = Hub(self.flask_app.config["REDIS_URL"], state_lookup(self.flask_app))
        stream = Stream(self.hub, hold, send)

        async def watch_disconnect() -> None:
            """Tell the stream when its client leaves."""
            while (await receive())["type"] != "http.disconnect":
                pass
            stream.follower.queue.put_nowait(GONE)

        watcher = asyncio.create_task(watch_disconnect())
        try:
            await stream.run()
        except asyncio.CancelledError:  # the server stops: end cleanly, so the client resumes elsewhere
            await _end(send)
            raise
        except (RedisError, OSError) as exc:  # Redis failed mid-stream: the client resumes by Last-Event-ID
            logger.warning("event stream %s ended early: %s", hold.get("log"), exc)
        finally:
            watcher.cancel()
        await _end(send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Answer the server's startup and shutdown; on shutdown, stop the hub."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.hub is not None:
                    await self.hub.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _end(send: Send) -> None:
    """End a held response; a client already gone is no matter."""
    with contextlib.suppress(Exception):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def request_threads(flask_app: Flask) -> int:
    """Return the threads Flask gets: COMFYQ_API_THREADS, else 1 on SQLite (one writer at a time), else 4."""
    # Measured (bench/submit.py, 2 processes): on SQLite 1 thread took 194 jobs/s at p99 78 ms, 4 threads
    # 144 jobs/s at p99 1.5 s (queueing on its one write lock); on PostgreSQL 1/4/8 threads took 100/154/135.
    sqlite = flask_app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    return int(os.environ.get("COMFYQ_API_THREADS") or (1 if sqlite else 4))


flask_app = create_app()
app = HoldingApp(flask_app, threads=request_threads(flask_app))
