"""The MCP server: list the caller's tools, run a call in a thread, send its progress; stdio for a local agent."""
from __future__ import annotations

import logging
import threading
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable

import anyio
import anyio.from_thread
import anyio.to_thread
import mcp_types as types
import requests
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from ..client import Client, ComfyqAPIError
from .calls import call_tool
from .tools import all_tools

logger = logging.getLogger(__name__)
ClientFor = Callable[[ServerRequestContext[Any, Any]], Client]
"""Return a REST client for one request, with the key of whoever sent it."""
INSTRUCTIONS = ("Each tool but job_status and cancel_job runs one comfyq workflow template as a job, paid from "
                "your credits, and returns a small preview plus links to the full images (fetch them with your "
                "API key). Progress notifications say the queue position, the node running and its step.")


def _version() -> str:
    """Return comfyq's installed version, if it is installed."""
    try:
        return version("comfyq")
    except PackageNotFoundError:
        return ""


def build_server(client_for: ClientFor) -> Server[Any]:
    """Return an MCP server whose tools are the caller's templates, job_status and cancel_job."""

    async def list_tools(ctx: ServerRequestContext[Any, Any],
                         params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        client = client_for(ctx)
        try:
            templates, account = await anyio.to_thread.run_sync(lambda: (client.templates(), client.account()))
        except (ComfyqAPIError, requests.RequestException) as exc:
            raise MCPError(code=types.INTERNAL_ERROR, message=str(exc)) from exc
        finally:
            client.session.close()
        return types.ListToolsResult(tools=all_tools(templates, account))

    async def call(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        client = client_for(ctx)
        ended = threading.Event()

        def report(percent: float, message: str) -> None:
            """Send a progress notification from the call's thread (none once the call is over)."""
            if ended.is_set():
                return
            try:
                anyio.from_thread.run(ctx.session.report_progress, percent, 100.0, message)
            except Exception as exc:  # a client gone or a closed stream: the job goes on, its end is still told
                logger.info("progress of %s not sent: %r", params.name, exc)
                ended.set()

        try:
            return await anyio.to_thread.run_sync(call_tool, client, params.name, params.arguments or {}, report,
                                                  abandon_on_cancel=True)
        finally:
            ended.set()
            client.session.close()

    return Server("comfyq", version=_version(), instructions=INSTRUCTIONS, on_list_tools=list_tools,
                  on_call_tool=call)


async def serve_stdio(api_url: str, api_key: str | None) -> None:
    """Serve MCP on stdin/stdout, calling the API at ``api_url`` with ``api_key``."""
    from mcp.server.stdio import stdio_server

    server = build_server(lambda ctx: Client(api_url, api_key))
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
