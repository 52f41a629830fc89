"""ASGI entry, ``uvicorn comfyq.asgi:app``: Flask answers every request; event streams stay open here.

Flask runs in a thread pool (a2wsgi). When its answer carries the
``X-Comfyq-Hold`` header (an event stream's opening, see ``api.streams``),
this layer sends the opening, keeps the connection and follows the stream's
log through the process's ``Hub``: one coroutine per stream, no thread.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any, Awaitable, Callable

from a2wsgi import WSGIMiddleware
from flask import Flask
from sqlalchemy import select

from . import create_app
from .api.streams import HOLD_HEADER
from .extensions import db
from .hub import GONE, RESYNC, Follower, Hub
from .job_events import FINAL_TYPES
from .models import Job
from .positions import position
from .streams import render

logger = logging.getLogger(__name__)
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
HEARTBEAT = 15.0  # seconds between keep-alive comments on a quiet stream
WAITING = ("pending", "queued")
HOLD_KEY = HOLD_HEADER.lower().encode()


def position_lookup(flask_app: Flask) -> Callable[[list[str]], dict[str, tuple[str, int | None]]]:
    """Return a function giving the status and queue position of jobs (run in a worker thread)."""
    def lookup(job_ids: list[str]) -> dict[str, tuple[str, int | None]]:
        with flask_app.app_context():
            jobs = db.session.scalars(select(Job).where(Job.id.in_(job_ids))).all()
            return {job.id: (job.status, position(job)) for job in jobs}
    return lookup


class Stream:
    """One held event stream: log messages in number order, position changes, keep-alives."""

    def __init__(self, hub: Hub, hold: dict[str, Any], send: Send) -> None:
        self.hub, self.send = hub, send
        self.last = int(hold["after"])
        self.job = hold.get("job")
        waiting = self.job if hold.get("status") in WAITING else None
        self.follower: Follower = hub.follow(hold["log"], waiting)
        if waiting is not None:
            self.follower.position = (hold["status"], hold.get("position"))
        self.done = False

    async def run(self) -> None:
        """Deliver events until the job's final event, the client leaving or the hub closing."""
        try:
            await self.catch_up()
            while not self.done and not self.follower.overflowed:
                try:
                    item = await asyncio.wait_for(self.follower.queue.get(), HEARTBEAT)
                except asyncio.TimeoutError:
                    await self.send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
                    continue
                if item == GONE:
                    return
                if item == RESYNC:
                    await self.catch_up()
                elif isinstance(item, tuple):
                    await self.position(*item[1:])
                else:
                    await self.message(item)
        finally:
            self.hub.forget(self.follower)

    async def catch_up(self) -> None:
        """Deliver every logged event after the last one delivered."""
        for number, body in await self.hub.read_after(self.follower.log, self.last):
            await self.deliver(number, body)
            if self.done:
                return

    async def message(self, raw: bytes) -> None:
        """Deliver a published event in order: read the log for any it skipped, drop any delivered."""
        number, _, body = raw.decode().partition(" ")
        if int(number) == self.last + 1:
            await self.deliver(int(number), body)
        elif int(number) > self.last:
            await self.catch_up()

    async def deliver(self, number: int, body: str) -> None:
        """Send one logged event; note whether the job stopped waiting or ended."""
        self.last = number
        await self.send({"type": "http.response.body", "body": render(number, body), "more_body": True})
        if self.job is None:
            return
        event = json.loads(body)
        kind = event.get("type")
        self.done = kind in FINAL_TYPES
        if kind == "queued":  # back in a queue after a lost instance
            self.follower.waiting_job = self.job
        elif kind == "started" or self.done:
            self.follower.waiting_job = None

    async def position(self, status: str, where: int | None) -> None:
        """Send a waiting job's new position (no id: it is not in the log, and resuming never needs it)."""
        if status not in WAITING:
            return  # moved on: its move is in the log
        body = json.dumps({"type": "queued", "status": status, "position": where, "job_id": self.job},
                          separators=(",", ":"))
        await self.send({"type": "http.response.body", "body": render(None, body), "more_body": True})


class HoldingApp:
    """Serve the Flask app, holding event streams open instead of ending them."""

    def __init__(self, flask_app: Flask, threads: int = 16) -> None:
        self.flask_app = flask_app
        self.wsgi = WSGIMiddleware(flask_app, workers=threads)  # type: ignore[arg-type]
        self.hub: Hub | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
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
        """Hold one stream until it ends or its client leaves, then end the response."""
        if self.hub is None:
            self.hub = Hub(self.flask_app.config["REDIS_URL"], position_lookup(self.flask_app))
        stream = Stream(self.hub, hold, send)

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            stream.follower.queue.put_nowait(GONE)

        watcher = asyncio.create_task(watch_disconnect())
        try:
            await stream.run()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client is gone
        finally:
            watcher.cancel()

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Answer the server's startup and shutdown; on shutdown, end every stream."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.hub is not None:
                    await self.hub.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


app = HoldingApp(create_app(), threads=int(os.environ.get("COMFYQ_API_THREADS") or 16))
