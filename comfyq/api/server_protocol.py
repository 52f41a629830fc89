"""The HTTP protocol ``comfyq api`` serves: uvicorn's httptools protocol, with a deadline for headers.

uvicorn waits for ever on a request whose headers stop half-way (or on a
connection that never says anything). Here a request's headers must be
complete within ``COMFYQ_READ_TIMEOUT`` seconds of its first byte, and a new
connection must begin a request within as long: a late one is answered 408
(or, if it sent nothing, closed). Malformed requests are answered in the one
error shape instead of uvicorn's plain text.
"""
from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config.settings import Config
from .slow_clients import error_json

_read_timeout: float | None = None


def read_timeout() -> float:
    """Return COMFYQ_READ_TIMEOUT, read once per process."""
    global _read_timeout
    if _read_timeout is None:
        _read_timeout = Config(os.environ).READ_TIMEOUT
    return _read_timeout


def raw_error(status: int, phrase: str, message: str) -> bytes:
    """Return a whole HTTP/1.1 error response in the one shape, closing the connection."""
    body = error_json(status, message)
    head = (f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body


class TimedHttpProtocol(HttpToolsProtocol):
    """httptools protocol that drops requests whose headers do not arrive in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timer: asyncio.TimerHandle | None = None
        self.began = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.began = True
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self.began = False
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        self.transport.write(raw_error(400, "Bad Request", f"the HTTP request is malformed ({msg.rstrip('.')}); "
                                                          "send a valid HTTP/1.1 request"))
        self.transport.close()

    def _arm(self) -> None:
        """Start (or restart) the wait for a request's headers."""
        self._disarm()
        self.header_timer = self.loop.call_later(read_timeout(), self._headers_late)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_late(self) -> None:
        """Answer 408 to a request whose headers stalled; close a connection that sent nothing."""
        self.header_timer = None
        if self.transport.is_closing():
            return
        if self.began and (self.cycle is None or self.cycle.response_complete):  # never inside another answer
            timeout = read_timeout()
            self.transport.write(raw_error(408, "Request Timeout",
                                           f"the request headers did not arrive within {timeout:g} s "
                                           "(COMFYQ_READ_TIMEOUT); send the whole request at once"))
        self.transport.close()
