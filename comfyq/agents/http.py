"""MCP over streamable HTTP at ``/mcp`` of the API: the same API keys, each call made with its caller's key.

Stateless (a fresh transport per POST, its answer an event stream carrying the
call's progress), so any API process can answer any message. The tools call
the API back through its own socket with the key the request presented, so
credits, limits and checks are exactly the REST API's.
"""
from __future__ import annotations

import contextlib
import json
from typing import Any, Awaitable, Callable, Mapping

import anyio.to_thread
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from ..client import Client
from .server import build_server

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
KeyCheck = Callable[[str], bool]
MOUNT = "/mcp"


def presented_key(headers: Mapping[str, str]) -> str:
    """Return the API key of a request (``Authorization: Bearer`` or ``X-API-Key``), or ''."""
    header = headers.get("authorization", "")
    return (header[7:] if header[:7].lower() == "bearer " else headers.get("x-api-key", "")).strip()


def loopback(scope: Scope) -> str:
    """Return the base URL of the socket this request came in on, for calling the API back."""
    host, port = scope.get("server") or ("127.0.0.1", 8000)
    host = f"[{host}]" if ":" in host else host
    return f"{scope.get('scheme', 'http')}://{host}:{port}"


def client_for(ctx: ServerRequestContext[Any, Any]) -> Client:
    """Return a client of the API with the key of the HTTP request that carried this MCP request."""
    request = ctx.request
    if request is None:
        raise RuntimeError("an MCP request over HTTP came without its HTTP request")
    client = Client(loopback(request.scope), presented_key(request.headers))
    if request.headers.get("host"):  # so output links name the host the agent reached, not the loopback
        client.session.headers["Host"] = request.headers["host"]
    return client


class McpHttp:
    """The ASGI app at /mcp: refuse requests without a known key, hand the rest to the MCP session manager."""

    def __init__(self, known_key: KeyCheck | None = None) -> None:
        self.known_key = known_key
        self.manager = StreamableHTTPSessionManager(app=build_server(client_for), stateless=True)
        self.running: contextlib.AsyncExitStack | None = None

    @staticmethod
    def serves(scope: Scope) -> bool:
        """Tell whether a request is for MCP."""
        path = str(scope.get("path", ""))
        return scope.get("type") == "http" and (path == MOUNT or path.startswith(MOUNT + "/"))

    async def start(self) -> None:
        """Start the session manager (call once, in the server's lifespan)."""
        self.running = contextlib.AsyncExitStack()
        await self.running.enter_async_context(self.manager.run())

    async def stop(self) -> None:
        """Stop the session manager, ending open calls."""
        if self.running is not None:
            await self.running.aclose()
            self.running = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        key = presented_key(headers)
        if not key:
            await _unauthorized(send, "send your API key: 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
            return
        if self.known_key is not None and not await anyio.to_thread.run_sync(self.known_key, key):
            await _unauthorized(send, "this API key is unknown, revoked, or its user is disabled; ask an admin for one")
            return
        if self.running is None:
            await _unavailable(send)
            return
        await self.manager.handle_request(scope, receive, send)  # type: ignore[arg-type]


async def _answer(send: Send, status: int, name: str, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Answer in the API's one error shape."""
    body = json.dumps({"code": status, "status": name, "message": message, "errors": {}}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def _unauthorized(send: Send, message: str) -> None:
    """Answer 401 in the API's error shape."""
    await _answer(send, 401, "Unauthorized", message, [(b"www-authenticate", b"Bearer")])


async def _unavailable(send: Send) -> None:
    """Answer 503: the server runs without its lifespan, so MCP was never started."""
    await _answer(send, 503, "Service Unavailable", "MCP needs the ASGI lifespan; run the API with `comfyq api` "
                  "(uvicorn) and lifespan on", [])
