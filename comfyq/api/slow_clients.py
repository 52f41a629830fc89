"""Keep slow clients from holding Flask's threads: bodies are read whole first, stalled readers are dropped.

A client that sends its body slowly, or stops half-way, holds a coroutine
and a connection, never one of Flask's few threads. Bodies are read until
``read_timeout`` passes without a byte or ``deadline`` passes in all (408),
and refused once they outgrow ``limit`` (413), before they are kept whole.
Chunked bodies are read the same way and handed to Flask with a
``Content-Length``, which WSGI needs to see them at all. Bodies still arriving
share a budget per process (four of the largest by default; past it, 503), so
many slow uploads cannot fill its memory. A client that stops reading its answer
(an event stream too) for ``read_timeout`` loses the connection, so the thread
or stream writing that answer is freed.
"""
from __future__ import annotations

import asyncio
import json
import time
from http import HTTPStatus
from typing import Any, Awaitable, Callable

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
DROPPED = (b"content-length", b"transfer-encoding")


class BodyRefused(Exception):
    """The body will not be read: ``status`` and a message that says what to change."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ClientLeft(Exception):
    """The client closed the connection before its body was complete."""


def error_json(status: int, message: str) -> bytes:
    """Return the one error shape for ``status`` as JSON bytes."""
    name = HTTPStatus(status).phrase
    return json.dumps({"code": status, "status": name, "message": message, "errors": {}}).encode()


def declared_length(scope: Message) -> int | None:
    """Return the request's Content-Length, or None when it has none (chunked or no body)."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            return int(value)  # the HTTP parser has checked it is a number
    return None


class BodyReader:
    """Read whole request bodies within a size limit, a pause limit and a deadline, and a budget for all at once.

    The budget (``BUDGET_BODIES`` bodies of the largest size by default) bounds the memory that bodies
    still arriving hold together: a body that would pass it is answered 503, so many slow uploads cannot
    fill a process's memory.
    """

    BUDGET_BODIES = 4

    def __init__(self, limit: int, read_timeout: float, deadline: float, budget: int | None = None) -> None:
        self.limit, self.read_timeout, self.deadline = limit, read_timeout, deadline
        self.budget = budget if budget is not None else self.BUDGET_BODIES * limit
        self.held = 0  # bytes of bodies still arriving, in this process

    async def read(self, scope: Message, receive: Receive) -> bytes:
        """Return the whole body, or raise BodyRefused (too large, too slow, too many) or ClientLeft."""
        declared = declared_length(scope)
        if declared is not None and declared > self.limit:
            raise BodyRefused(413, f"the body is {declared} bytes; the limit is {self.limit} "
                                   "(COMFYQ_MAX_BODY_BYTES); send a smaller one")
        parts: list[bytes] = []
        size = 0
        ends = time.monotonic() + self.deadline
        try:
            while True:
                message = await self._next(receive, ends)
                if message is None:
                    raise BodyRefused(408, f"the request body did not arrive in time ({size} bytes came; a "
                                           f"client may pause at most {self.read_timeout:g} s and take at most "
                                           f"{self.deadline:g} s in all); send the whole body at once")
                if message["type"] == "http.disconnect":
                    raise ClientLeft()
                chunk = message.get("body", b"")
                if size + len(chunk) > self.limit:
                    raise BodyRefused(413, f"the body is over the limit of {self.limit} bytes "
                                           "(COMFYQ_MAX_BODY_BYTES); send a smaller one")
                if self.held + len(chunk) > self.budget:
                    raise BodyRefused(503, "the server is receiving too many request bodies at once; try again "
                                           "in a few seconds")
                self.held += len(chunk)
                size += len(chunk)
                parts.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(parts)
        finally:
            self.held -= size

    async def refuse(self, send: Send, refusal: BodyRefused, receive: Receive) -> None:
        """Answer in the one error shape and close; first let a refused body finish, unread.

        A client still sending when the connection closes gets a reset instead of the
        answer, so the rest of the body is read and dropped (never kept) until it ends,
        pauses or runs out of time.
        """
        body = error_json(refusal.status, refusal.message)
        await send({"type": "http.response.start", "status": refusal.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        if refusal.status in (413, 503):
            ends = time.monotonic() + self.deadline
            while (message := await self._next(receive, ends)) is not None and message.get("more_body"):
                pass
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _next(self, receive: Receive, ends: float) -> Message | None:
        """Return the connection's next message, or None when it does not come in time."""
        wait = max(min(self.read_timeout, ends - time.monotonic()), 0.0)
        try:
            return await asyncio.wait_for(receive(), timeout=wait)
        except asyncio.TimeoutError:
            return None


def with_length(scope: Message, body: bytes) -> Message:
    """Return ``scope`` whose headers give the body's length instead of any chunked encoding."""
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in DROPPED]
    if body or scope.get("method") in ("POST", "PUT", "PATCH"):
        headers.append((b"content-length", str(len(body)).encode()))
    return {**scope, "headers": headers}


def replay(body: bytes, receive: Receive) -> Receive:
    """Return a receive that gives ``body`` once, then whatever the connection says next."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def paced(send: Send, timeout: float) -> tuple[Send, Callable[[], bool]]:
    """Return a send that gives up on a client not reading for ``timeout`` s, and a test of whether it did.

    Once it gave up, the rest of the answer is dropped so the thread writing it finishes; the
    server then closes the connection, as the answer was never completed.
    """
    stalled = False

    async def send_paced(message: Message) -> None:
        nonlocal stalled
        if stalled:
            return
        try:
            await asyncio.wait_for(send(message), timeout)
        except asyncio.TimeoutError:
            stalled = True

    return send_paced, lambda: stalled
