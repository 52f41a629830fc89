"""``GET /comfy/ws``: ComfyUI's websocket for one student, served by the ASGI layer (``comfyq.asgi``).

The cookie says who; the socket follows the student's event log through the
process's ``Hub`` (one pub/sub connection for every stream and socket) and
sends each event as ComfyUI's messages (``translate``), then ``status`` with
the student's place in the queue whenever it changes; while something of
theirs waits, that place is read again every second, as others' jobs move.
Every tab of a student has its own socket and gets every message.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from http.cookies import CookieError, SimpleCookie
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

from flask import Flask

from ..events import log as events
from ..db.extensions import db
from ..events.hub import GONE, Hub
from .auth import COOKIE, NO_SESSION, student_of_cookie
from .history import queue_remaining
from ..db.models import User
from .translate import Translator, message, status

logger = logging.getLogger(__name__)
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
PATHS = ("/comfy/ws", "/comfy/api/ws")
POLL_EVERY = 1.0  # seconds between reads of a waiting student's place
FEATURES = {"supports_preview_metadata": False}
FLAGS = "feature_flags"  # to a socket's mailbox: the client asked for the server's feature flags


def cookie_of(scope: dict[str, Any]) -> str | None:
    """Return the session cookie of a websocket's opening request, if it has one."""
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name.lower() == b"cookie":
            with contextlib.suppress(CookieError, UnicodeDecodeError):
                jar.load(value.decode("latin-1"))
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


class EditorSockets:
    """Serve the editor's websockets of one process."""

    def __init__(self, flask_app: Flask, hub: Callable[[], Hub]) -> None:
        self.flask_app, self.hub = flask_app, hub

    def _student(self, token: str | None) -> str | None:
        """Return the id of the student of a session cookie (in a worker thread)."""
        with self.flask_app.app_context():
            user = student_of_cookie(token)
            return user.id if user is not None else None

    def place_of(self, user_id: str) -> int:
        """Return the student's place in the queue (in a worker thread)."""
        with self.flask_app.app_context():
            user = db.session.get(User, user_id)
            return queue_remaining(user) if user is not None else 0

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """Accept a student's socket and speak ComfyUI's messages on it until either side leaves."""
        if (await receive())["type"] != "websocket.connect":
            return
        loop = asyncio.get_running_loop()
        user_id = await loop.run_in_executor(None, self._student, cookie_of(scope)) \
            if scope.get("path") in PATHS else None
        if user_id is None:
            await _deny(scope, send, 401 if scope.get("path") in PATHS else 404)
            return
        query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
        sid = (query.get("clientId") or [""])[0][:64] or uuid.uuid4().hex
        await send({"type": "websocket.accept"})
        await Socket(self, user_id, sid, send).run(receive)


class Socket:
    """One open editor socket: the student's log in, ComfyUI's messages out."""

    def __init__(self, sockets: EditorSockets, user_id: str, sid: str, send: Send) -> None:
        self.sockets, self.user_id, self.sid, self.send = sockets, user_id, sid, send
        self.hub = sockets.hub()
        self.log = events.user_log(user_id)
        self.translator = Translator()
        self.place: int | None = None

    async def write(self, item: dict[str, Any]) -> None:
        """Send one message."""
        await self.send({"type": "websocket.send", "text": json.dumps(item, separators=(",", ":"))})

    async def tell_place(self, first: bool = False) -> None:
        """Send ``status`` if the student's place changed (always the first time, with the sid)."""
        place = await asyncio.get_running_loop().run_in_executor(None, self.sockets.place_of, self.user_id)
        if first or place != self.place:
            self.place = place
            await self.write(status(place, self.sid if first else None))

    async def run(self, receive: Receive) -> None:
        """Follow the student's log until the client or the server goes."""
        follower = self.hub.follow(self.log, None, False)
        reader = asyncio.create_task(self.read(receive, follower.queue))
        try:
            last = (await self.hub.redis.get(self.log + ":last") or events.START.encode()).decode()
            await self.tell_place(first=True)
            while True:
                try:
                    item = await asyncio.wait_for(follower.queue.get(), POLL_EVERY)
                except asyncio.TimeoutError:
                    if self.place:  # something waits: others' jobs move it
                        await self.tell_place()
                    continue
                if item == GONE or follower.overflowed:
                    return
                if item == FLAGS:
                    await self.write(message("feature_flags", FEATURES))
                else:  # an announced event or a resync: read the log on from the last one sent
                    last = await self.catch_up(last)
        except Exception as exc:  # a client gone mid-send, Redis lost: the editor reconnects by itself
            logger.info("editor socket of %s closed: %s", self.user_id, exc)
        finally:
            reader.cancel()
            self.hub.forget(follower)
            with contextlib.suppress(Exception):
                await self.send({"type": "websocket.close", "code": 1000})

    async def catch_up(self, last: str) -> str:
        """Send every logged event after ``last`` as ComfyUI's messages, then the place; return the new last id."""
        logged = await self.hub.read_after(self.log, last)
        for event_id, body in logged:
            last = event_id
            told = self.translator.messages(json.loads(body))
            over = told.pop() if told and told[-1]["type"] == "executing" and told[-1]["data"]["node"] is None \
                else None
            for item in told:
                await self.write(item)
            if over is not None:  # as ComfyUI: the new status, then "executing null" ends the prompt
                await self.tell_place()
                await self.write(over)
        if logged:
            await self.tell_place()
        return last

    async def read(self, receive: Receive, mailbox: asyncio.Queue[Any]) -> None:
        """Read the client's frames: answer ``feature_flags``, notice when it leaves."""
        while True:
            frame = await receive()
            if frame["type"] == "websocket.disconnect":
                mailbox.put_nowait(GONE)
                return
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                if json.loads(frame.get("text") or "{}").get("type") == "feature_flags":
                    mailbox.put_nowait(FLAGS)


async def _deny(scope: dict[str, Any], send: Send, code: int) -> None:
    """Refuse a websocket before it opens: an HTTP answer where the server allows one, else a plain close."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = json.dumps({"code": code, "status": "Unauthorized" if code == 401 else "Not Found",
                           "message": NO_SESSION if code == 401 else "no such websocket", "errors": {}}).encode()
        await send({"type": "websocket.http.response.start", "status": code,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 4401 if code == 401 else 4404})
