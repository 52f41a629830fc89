"""Websocket clients by client id, and one ordered outbox feeding them.

Every message, drop and crash goes through the same queue, as in ComfyUI's
``send_sync``/``publish_loop``, so clients see events in the order the
executor produced them.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

import aiohttp
from aiohttp import web

logger = logging.getLogger(__name__)

SEND_ERRORS = (ConnectionError, RuntimeError, aiohttp.ClientError)


class Hub:
    """Websocket registry, message routing and the freeze switch."""

    def __init__(self) -> None:
        self.sockets: dict[str, tuple[web.WebSocketResponse, web.Request]] = {}
        self.feature_flags: dict[str, dict[str, Any]] = {}
        self.thawed = asyncio.Event()
        self.thawed.set()
        self._outbox: asyncio.Queue[tuple[str, Any, str | None]] = asyncio.Queue()
        self._thaw_timer: asyncio.TimerHandle | None = None

    def register(self, sid: str, ws: web.WebSocketResponse, request: web.Request) -> None:
        """Make ws the socket of client sid, replacing any earlier one."""
        self.sockets[sid] = (ws, request)
        self.feature_flags[sid] = {}

    def unregister(self, sid: str, ws: web.WebSocketResponse) -> None:
        """Forget ws, unless client sid has reconnected on another socket since."""
        current = self.sockets.get(sid)
        if current is not None and current[0] is ws:
            del self.sockets[sid]
            self.feature_flags.pop(sid, None)

    def send(self, event: str, data: Any, sid: str | None = None) -> None:
        """Queue a JSON message for one client, or for all when sid is None."""
        self._outbox.put_nowait(("json", {"type": event, "data": data}, sid))

    def send_bytes(self, payload: bytes, sid: str | None) -> None:
        """Queue a binary frame (a preview) for one client."""
        self._outbox.put_nowait(("bytes", payload, sid))

    def drop(self, sid: str) -> None:
        """Queue an abrupt close of client sid's socket, as a lost connection would."""
        self._outbox.put_nowait(("drop", None, sid))

    def crash(self, code: int) -> None:
        """Queue the end of the process, after everything sent so far went out."""
        self._outbox.put_nowait(("crash", code, None))

    async def publish_loop(self) -> None:
        """Deliver queued messages forever, pausing while frozen."""
        while True:
            kind, payload, sid = await self._outbox.get()
            await self.thawed.wait()
            if kind == "crash":
                sys.stdout.flush()
                os._exit(payload)
            if kind == "drop":
                self._drop_now(sid)
                continue
            targets = list(self.sockets.values()) if sid is None else [self.sockets[sid]] if sid in self.sockets else []
            for ws, _request in targets:
                try:
                    if kind == "json":
                        await ws.send_json(payload)
                    else:
                        await ws.send_bytes(payload)
                except SEND_ERRORS as exc:
                    logger.warning("send error: %s", exc)

    def _drop_now(self, sid: str | None) -> None:
        entry = self.sockets.pop(sid, None) if sid is not None else None
        if entry is None or sid is None:
            return
        self.feature_flags.pop(sid, None)
        transport = entry[1].transport
        if transport is not None:
            transport.close()

    def freeze(self, seconds: float | None) -> None:
        """Stop answering anything until thawed, or until seconds have passed."""
        self.thawed.clear()
        if self._thaw_timer is not None:
            self._thaw_timer.cancel()
        if seconds is not None:
            self._thaw_timer = asyncio.get_running_loop().call_later(seconds, self.thaw)

    def thaw(self) -> None:
        """Answer again."""
        if self._thaw_timer is not None:
            self._thaw_timer.cancel()
            self._thaw_timer = None
        self.thawed.set()

    @property
    def frozen(self) -> bool:
        """Tell whether the simulator is pretending to be stuck."""
        return not self.thawed.is_set()
