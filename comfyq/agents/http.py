"""MCP over streamable HTTP at ``/mcp`` of the API: the same API keys, each call made with its caller's key.

Stateless (a fresh transport per POST, its answer an event stream carrying the
call's progress), so any API process can answer any message. The tools call
the API back through its own socket with the key the request presented, so
credits, limits and checks are exactly the REST API's. The MCP SDK (about
50 MB) is loaded, and its session manager started, at the first MCP request,
not in every API process at its start.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

import anyio.to_thread

if TYPE_CHECKING:
    from ..client import Client
    from mcp.server.context import ServerRequestContext
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
KeyCheck = Callable[[str], bool]
MOUNT = "/mcp"
logger = logging.getLogger(__name__)


def presented_key(headers: Mapping[str, str]) -> str:
    """Return the API key of a request (``Authorization: Bearer`` or ``X-API-Key``), or ''."""
    header = headers.get("authorization", "")
    return (header[7:] if header[:7].lower() == "bearer " else headers.get("x-api-key", "")).strip()


def loopback(scope: Scope) -> str:
    """Return the base URL of the socket this request came in on, for calling the API back."""
    host, port = scope.get("server") or ("127.0.0.1", 8000)
    host = f"[{host}]" if ":" in host else host
    return f"{scope.get('scheme', 'http')}://{host}:{port}"


def client_for(ctx: "ServerRequestContext[Any, Any]") -> "Client":
    """Return a client of the API with the key of the HTTP request that carried this MCP request."""
    from ..client import Client  # requests, with every codec charset_normalizer loads: not in an API at its start

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
        self.live = False  # between the server's lifespan start and stop
        self.manager: StreamableHTTPSessionManager | None = None
        self.runner: asyncio.Task[None] | None = None
        self.ready = self.stopping = asyncio.Event()

    @staticmethod
    def serves(scope: Scope) -> bool:
        """Tell whether a request is for MCP."""
        path = str(scope.get("path", ""))
        return scope.get("type") == "http" and (path == MOUNT or path.startswith(MOUNT + "/"))

    async def start(self) -> None:
        """Let MCP requests in (call once, in the server's lifespan); the SDK loads at the first of them."""
        self.live = True

    async def stop(self) -> None:
        """Stop the session manager, if it ran, ending open calls."""
        self.live = False
        if self.runner is not None:
            self.stopping.set()
            with contextlib.suppress(Exception):  # a manager that failed to start was logged when it did
                await self.runner
            self.runner = self.manager = None

    async def session_manager(self) -> StreamableHTTPSessionManager | None:
        """Return the running session manager, loading the SDK and starting it on first use; None if it failed."""
        if self.runner is None:
            from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
            from .server import build_server

            self.manager = StreamableHTTPSessionManager(app=build_server(client_for), stateless=True)
            self.ready, self.stopping = asyncio.Event(), asyncio.Event()
            self.runner = asyncio.get_running_loop().create_task(self._run(self.manager))
        await self.ready.wait()
        if self.runner.done():  # it could not start: let the next request try again
            logger.error("the MCP session manager did not start", exc_info=self.runner.exception())
            self.runner = self.manager = None
        return self.manager

    async def _run(self, manager: StreamableHTTPSessionManager) -> None:
        """Run the manager on a task of its own, entered and left there, until stop()."""
        try:
            async with manager.run():
                self.ready.set()
                await self.stopping.wait()
        finally:
            self.ready.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        key = presented_key(headers)
        if not key:
            await _unauthorized(send, "send your API key: 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
            return
        if self.known_key is not None and not await anyio.to_thread.run_sync(self.known_key, key):
            await _unauthorized(send, "this API key is unknown, revoked, or its user is disabled; ask an admin for one")
            return
        if not self.live:
            await _unavailable(send)
            return
        manager = await self.session_manager()
        if manager is None:
            await _unavailable(send, "MCP could not start on this server (see its log); try again in a moment")
            return
        await manager.handle_request(scope, receive, send)  # type: ignore[arg-type]


async def _answer(send: Send, status: int, name: str, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Answer in the API's one error shape."""
    body = json.dumps({"code": status, "status": name, "message": message, "errors": {}}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def _unauthorized(send: Send, message: str) -> None:
    """Answer 401 in the API's error shape."""
    await _answer(send, 401, "Unauthorized", message, [(b"www-authenticate", b"Bearer")])


async def _unavailable(send: Send, message: str = "MCP needs the ASGI lifespan; run the API with `comfyq api` "
                       "(uvicorn) and lifespan on") -> None:
    """Answer 503: MCP was never started, or its session manager failed to."""
    await _answer(send, 503, "Service Unavailable", message, [])
