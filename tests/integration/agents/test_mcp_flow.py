"""Templates as MCP tools against the real stack: in-process, over stdio (`comfyq mcp`) and over HTTP (/mcp)."""
from __future__ import annotations

import asyncio
import base64
import io
import os
import sys
from typing import Any, Iterator

import httpx2
import pytest
import requests
from flask import Flask
from mcp import Client as McpClient, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, ImageContent, ResourceLink, TextContent
from PIL import Image

from comfyq.accounts import users as accounts
from comfyq.agents.server import build_server
from comfyq.client import Client
from tests.conftest import txt2img
from tests.integration.conftest import api_server

PARAMS = {"prompt": "a lighthouse at dusk", "width": 320, "height": 512, "steps": 6}


@pytest.fixture(scope="module")
def api(stack_env: dict[str, str], workers: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `comfyq api` process (uvicorn, so /mcp too) on the test stack; its URL."""
    with api_server(stack_env, tmp_path_factory.mktemp("api") / "api.log") as url:
        yield url


@pytest.fixture(scope="module")
def broke(app: Flask) -> str:
    """The key of a novice user with no credits at all."""
    with app.app_context():
        return accounts.issue_key(accounts.create_user("mcp-broke", "user", "novice"))[1]


def hold_both_gpus(api: str, svc_key: str) -> None:
    """Keep both instances busy for a while, so the tool's job waits in the queue and its stream opens first."""
    service = Client(api, svc_key)
    for instance in ("gpu0", "gpu1"):
        service.submit(workflow=txt2img(steps=10, sim={"3": {"step_seconds": 0.15}}), instance=instance)


class Told:
    """The progress notifications a call received."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.seen.append((progress, total, message))


def check_tools(listed: Any, expert: bool) -> None:
    """The templates are tools with their params as schemas, novices seeing novice params only."""
    tools = {tool.name: tool for tool in listed.tools}
    assert {"txt2img", "img2img", "inpaint", "upscale", "job_status", "cancel_job"} <= set(tools)
    schema = tools["txt2img"].input_schema
    assert schema["required"] == ["prompt"]
    assert schema["properties"]["width"] == {"type": "integer", "minimum": 64, "maximum": 2048, "multipleOf": 8,
                                             "default": 512, "description": "Width in pixels, a multiple of 8."}
    assert ("cfg" in schema["properties"]) is expert
    assert "image_width" not in tools["img2img"].input_schema["properties"]  # measured by comfyq, never given


def check_run(result: CallToolResult, told: Told, api: str, key: str) -> None:
    """A finished txt2img call: a preview no larger than 256 px, links to the full image, and its progress."""
    assert not result.is_error, result.content
    previews = [c for c in result.content if isinstance(c, ImageContent)]
    links = [c for c in result.content if isinstance(c, ResourceLink)]
    assert len(previews) == 1 and previews[0].mime_type == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(previews[0].data))) as preview:
        assert preview.size == (160, 256)
    assert len(links) == 1 and links[0].mime_type == "image/png" and links[0].uri.startswith(api + "/v1/jobs/")
    full = requests.get(links[0].uri, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    with Image.open(io.BytesIO(full.content)) as image:
        assert image.size == (320, 512)
    job = result.structured_content["job"]
    assert job["status"] == "succeeded" and job["params"]["prompt"] == PARAMS["prompt"]
    messages = [m or "" for _, _, m in told.seen]
    assert messages[0].startswith(("queued", "pending")), messages
    assert any("step" in m for m in messages), messages  # the sampler's steps, from the job's events
    values = [p for p, _, _ in told.seen]
    assert values == sorted(set(values)) and all(t == 100.0 for _, t, _ in told.seen)


async def session_flow(client: McpClient, api: str, key: str, svc_key: str, expert: bool) -> None:
    """List the tools, run txt2img with progress, then read its status through the job tool."""
    check_tools(await client.list_tools(), expert)
    await asyncio.to_thread(hold_both_gpus, api, svc_key)
    told = Told()
    result = await client.call_tool("txt2img", PARAMS, progress_callback=told)
    check_run(result, told, api, key)
    status = await client.call_tool("job_status", {"job_id": result.structured_content["job"]["id"]})
    assert not status.is_error and status.structured_content["job"]["status"] == "succeeded"


async def refused(client: McpClient) -> None:
    """A call whose key has no credits comes back as a tool error with the API's message; nothing runs."""
    result = await client.call_tool("txt2img", {"prompt": "anything"})
    assert result.is_error
    text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
    assert text.startswith("402: ") and "credits" in text and "your balance is 0" in text


def test_in_process_lists_templates_runs_txt2img_and_refuses_without_credits(
        api: str, keys: dict[str, str], broke: str) -> None:
    async def main() -> None:
        async with McpClient(build_server(lambda ctx: Client(api, keys["newbie"]))) as client:
            await session_flow(client, api, keys["newbie"], keys["svc"], expert=False)
        async with McpClient(build_server(lambda ctx: Client(api, broke))) as client:
            await refused(client)
            unknown = await client.call_tool("job_status", {"job_id": "no-such-job"})
            assert unknown.is_error and unknown.content[0].text.startswith("404: ")

    asyncio.run(main())


def test_stdio_comfyq_mcp_serves_the_same_tools(api: str, keys: dict[str, str], broke: str) -> None:
    def command(key: str) -> StdioServerParameters:
        env = {**os.environ, "COMFYQ_API_URL": api, "COMFYQ_API_KEY": key}
        return StdioServerParameters(command=sys.executable, args=["-m", "comfyq", "mcp"], env=env)

    async def main() -> None:
        async with McpClient(command(keys["alice"])) as client:
            await session_flow(client, api, keys["alice"], keys["svc"], expert=True)
        async with McpClient(command(broke)) as client:
            await refused(client)

    asyncio.run(main())


def test_http_mcp_under_the_api_with_the_same_keys(api: str, keys: dict[str, str], broke: str) -> None:
    def over_http(key: str) -> McpClient:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
        return McpClient(streamable_http_client(f"{api}/mcp", http_client=http))

    async def main() -> None:
        async with over_http(keys["alice"]) as client:
            await session_flow(client, api, keys["alice"], keys["svc"], expert=True)
        async with over_http(broke) as client:
            await refused(client)

    asyncio.run(main())
    for headers in ({}, {"X-API-Key": "cq_nope.nope"}):  # the door is shut without a live key, in the API's shape
        answer = requests.post(f"{api}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                               headers=headers, timeout=30)
        assert answer.status_code == 401 and answer.json()["code"] == 401 and answer.json()["message"]
