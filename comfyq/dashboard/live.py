"""The dashboard's held event stream: a fresh snapshot after job events, and at least every few seconds.

``comfyq.asgi`` holds it once the view has sent the first snapshot. The hub
nudges it at any job event; a burst of events makes one snapshot. Health and
queue depths change without job events, so a quiet stream looks again every
``EVERY`` seconds. A snapshot equal to the last one sent is not sent again.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable

from flask import Flask

from ..db.extensions import db
from ..db.models import User
from ..events.hub import ANY, GONE, Follower, Hub
from .snapshot import snapshot

Send = Callable[[dict[str, Any]], Awaitable[None]]
EVERY = 2.0  # seconds between snapshots of a quiet fleet
GATHER = 0.25  # seconds to let a burst of events settle into one snapshot


class DashboardStream:
    """One operator's stream of snapshots."""

    def __init__(self, hub: Hub, flask_app: Flask, hold: dict[str, Any], send: Send) -> None:
        self.flask_app, self.send = flask_app, send
        self.hub, self.user_id = hub, str(hold["dashboard"])
        self.follower: Follower = hub.follow(ANY, None, False)
        self.last: str | None = None

    def body(self) -> str | None:
        """Return the operator's snapshot as JSON without its time, or None once they are gone (a worker thread)."""
        with self.flask_app.app_context():
            user = db.session.get(User, self.user_id)
            if user is None or user.disabled:
                return None
            figures = snapshot(user)
            figures.pop("at", None)
            return json.dumps(figures, separators=(",", ":"), default=str)

    async def run(self) -> None:
        """Send snapshots as they change until the client leaves or the hub closes."""
        loop = asyncio.get_running_loop()
        try:
            while not self.follower.overflowed:
                body = await loop.run_in_executor(None, self.body)
                if body is None:
                    return
                if body != self.last:
                    self.last = body
                    await self.send({"type": "http.response.body", "more_body": True,
                                     "body": f"event: snapshot\ndata: {body}\n\n".encode()})
                try:
                    item = await asyncio.wait_for(self.follower.queue.get(), EVERY)
                except asyncio.TimeoutError:
                    continue
                if item == GONE:
                    return
                await asyncio.sleep(GATHER)
                while not self.follower.queue.empty():
                    if self.follower.queue.get_nowait() == GONE:
                        return
        finally:
            self.hub.forget(self.follower)
