"""ASGI entry, ``uvicorn comfyq.asgi:app``: Flask answers every request; event streams stay open here.

Flask runs in a thread pool (a2wsgi), and is given a request only once its
whole body is here; a client that stops reading its answer is dropped
(``slow_clients``), so slow clients hold no thread. When its answer carries the
``X-Comfyq-Hold`` header (an event stream's opening, see ``api.streams``),
this layer sends the opening, keeps the connection and follows the stream's
log (``held.Stream``) through the process's ``Hub``: one coroutine per
stream, no thread; the dashboard's stream of snapshots (``dashboard.live``) likewise, and a
submission that asked to wait for its job (``Prefer: wait``, ``api.held_answers``). Websockets are the
editor's (``editor.ws``), on the same hub. ``/mcp`` is the Model Context Protocol for agents
(``agents.http``). Importing this module builds the app: servers import it,
nothing else should.
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

from . import create_app
from .events.sse import HOLD_HEADER, HOLDER_HEADER
from .events.held import Send, Stream, state_lookup
from .api.slow_clients import BodyReader, BodyRefused, ClientLeft, paced, replay, with_length
from .api.held_answers import answer_held
from .events.hub import GONE, Hub
from .editor.ws import EditorSockets
from .dashboard.live import DashboardStream
from .agents.http import McpHttp
from .accounts.users import user_for_key

logger = logging.getLogger(__name__)
Receive = Callable[[], Awaitable[dict[str, Any]]]
HOLD_KEY = HOLD_HEADER.lower().encode()
HOLDER_KEY = HOLDER_HEADER.lower().encode()


class HoldingApp:
    """Serve the Flask app, holding event streams open instead of ending them."""

    def __init__(self, flask_app: Flask, threads: int = 1) -> None:
        self.flask_app = flask_app
        self.wsgi = WSGIMiddleware(flask_app, workers=threads)  # type: ignore[arg-type]
        self.hub: Hub | None = None
        self.sockets = EditorSockets(flask_app, self.the_hub)  # ComfyUI's editor: GET /comfy/ws
        config = flask_app.config
        self.bodies = BodyReader(config["MAX_BODY_BYTES"], config["READ_TIMEOUT"], config["BODY_DEADLINE"])
        self.mcp = McpHttp(self.known_key)  # agents: MCP over streamable HTTP at /mcp

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await self.sockets(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        if McpHttp.serves(scope):
            await self.mcp(scope, receive, send)
            return
        # Tell the views that this server holds streams (a client cannot say so for itself).
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != HOLDER_KEY]
        scope = {**scope, "headers": [*headers, (HOLDER_KEY, b"1")]}
        try:
            body = await self.bodies.read(scope, receive)
        except BodyRefused as refusal:
            await self.bodies.refuse(send, refusal, receive)
            return
        except ClientLeft:
            return
        scope, receive = with_length(scope, body), replay(body, receive)
        send_flask, stalled = paced(send, self.bodies.read_timeout)
        hold: dict[str, Any] = {}
        kept: list[dict[str, Any]] = []  # a submission's answer, held while it waits (Prefer: wait)

        async def intercept(message: dict[str, Any]) -> None:
            """Pass Flask's answer on; keep a held stream's response open, and a waiting submission's unsent."""
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                for name, value in headers:
                    if name.lower() == HOLD_KEY:
                        hold.update(json.loads(value))
                if hold:  # a stream has no length: the body goes on (chunked)
                    dropped = (HOLD_KEY,) if "wait" in hold else (HOLD_KEY, b"content-length")
                    headers = [(k, v) for k, v in headers if k.lower() not in dropped]
                message = {**message, "headers": headers}
            elif hold and "wait" not in hold and message["type"] == "http.response.body" \
                    and not message.get("more_body"):
                message = {**message, "more_body": True}
            if "wait" in hold:
                kept.append(message)
            else:
                await send_flask(message)

        await self.wsgi(scope, receive, intercept)  # type: ignore[arg-type]
        if stalled():
            logger.warning("%s %s: the client stopped reading the answer for %g s; dropped", scope["method"],
                           scope["path"], self.bodies.read_timeout)
        elif "wait" in hold:
            await answer_held(hold, kept, scope, receive, send_flask, self.the_hub(),
                              self.wsgi)  # type: ignore[arg-type]
        elif hold:
            await self.follow(hold, receive, send_flask, stalled)

    async def follow(self, hold: dict[str, Any], receive: Receive, send: Send, stalled: Callable[[], bool]) -> None:
        """Hold one stream until it ends, its client leaves or stops reading, or the server stops; then end it."""
        hub = self.the_hub()

        async def send_or_drop(message: dict[str, Any]) -> None:
            """Send part of the stream; a client that stopped reading is dropped like one that left."""
            await send(message)
            if stalled():
                stream.follower.queue.put_nowait(GONE)

        stream: Stream | DashboardStream = DashboardStream(hub, self.flask_app, hold, send_or_drop) \
            if "dashboard" in hold else Stream(hub, hold, send_or_drop)

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
        if stalled():  # left unended, so the server closes the connection
            logger.warning("event stream %s: the client stopped reading for %g s; dropped", hold.get("log"),
                           self.bodies.read_timeout)
        else:
            await _end(send)

    def the_hub(self) -> Hub:
        """Return this process's event hub, made on first use (in the running loop)."""
        if self.hub is None:
            self.hub = Hub(self.flask_app.config["REDIS_URL"], state_lookup(self.flask_app))
        return self.hub

    def known_key(self, presented: str) -> bool:
        """Tell whether an API key is live (for /mcp, which Flask does not see)."""
        with self.flask_app.app_context():
            return user_for_key(presented) is not None

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Answer the server's startup and shutdown: start and stop MCP; on shutdown, stop the hub."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.mcp.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.mcp.stop()
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
