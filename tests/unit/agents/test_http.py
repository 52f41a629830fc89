"""The /mcp door: which requests it takes, the key a request presents, and the loopback address."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from comfyq.agents.http import McpHttp, loopback, presented_key


def test_the_key_comes_from_bearer_or_x_api_key() -> None:
    assert presented_key({"authorization": "Bearer cq_abc "}) == "cq_abc"
    assert presented_key({"authorization": "bearer cq_abc"}) == "cq_abc"
    assert presented_key({"x-api-key": "cq_def"}) == "cq_def"
    assert presented_key({"authorization": "Basic xyz"}) == "" and presented_key({}) == ""


def test_mcp_paths_only_and_the_loopback_address() -> None:
    assert McpHttp.serves({"type": "http", "path": "/mcp"}) and McpHttp.serves({"type": "http", "path": "/mcp/"})
    assert not McpHttp.serves({"type": "http", "path": "/mcpx"}) and not McpHttp.serves({"type": "http",
                                                                                          "path": "/v1/jobs"})
    assert loopback({"server": ("127.0.0.1", 8123), "scheme": "http"}) == "http://127.0.0.1:8123"
    assert loopback({"server": ("::1", 8000), "scheme": "http"}) == "http://[::1]:8000"


def test_a_request_without_a_live_key_is_refused_in_the_api_error_shape() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    door = McpHttp(known_key=lambda key: key == "cq_good")
    for headers in ([], [(b"x-api-key", b"cq_bad")]):
        sent.clear()
        asyncio.run(door({"type": "http", "path": "/mcp", "method": "POST", "headers": headers}, receive, send))
        assert sent[0]["status"] == 401 and (b"www-authenticate", b"Bearer") in sent[0]["headers"]
        body = json.loads(sent[1]["body"])
        assert body["code"] == 401 and body["status"] == "Unauthorized" and "key" in body["message"]
