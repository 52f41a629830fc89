"""``comfyq mcp``: serve the templates as Model Context Protocol tools to a local agent, over stdio."""
from __future__ import annotations

import click

from .jobs import with_api


@click.command("mcp")
@with_api
def mcp(api_url: str, api_key: str | None) -> None:
    """Serve MCP on stdin/stdout for an agent: one tool per template, job_status and cancel_job.

    Every call goes to the API at --api-url with your key, so your credits and limits apply.
    Over HTTP, agents use <api-url>/mcp with the same key instead.
    """
    import anyio

    from ..agents.server import serve_stdio

    if not api_key:
        raise click.UsageError("give your API key: --api-key or COMFYQ_API_KEY")
    anyio.run(serve_stdio, api_url, api_key)
