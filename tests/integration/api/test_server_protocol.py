"""Slow and malformed request heads against a real `comfyq api` (one process, one Flask thread)."""
from __future__ import annotations

import time
from typing import Iterator

import pytest
from flask import Flask

from tests.integration.conftest import api_server
from tests.integration.api.test_slow_clients import answer, answer_closes, connect, others_are_served, pending, user_key

SETTINGS = {"COMFYQ_READ_TIMEOUT": "3"}


@pytest.fixture(scope="module")
def api(stack_env: dict[str, str], app: Flask, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `comfyq api` process with a 3 s read timeout."""
    with api_server({**stack_env, **SETTINGS}, tmp_path_factory.mktemp("api") / "api.log") as url:
        yield url


def test_stalled_heads_are_answered_408_while_others_are_served(api: str, app: Flask) -> None:
    _, key = user_key(app, "waits-behind-slow-heads")
    stalled = []
    for path in ("/v1/account", "/v1/jobs", "/healthz", "/v1/templates"):
        sock = connect(api)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: comfyq\r\nAuthori".encode())
        stalled.append(sock)
    started = time.monotonic()
    others_are_served(api, key)
    assert all(pending(sock) for sock in stalled)
    for sock in stalled:
        status, body, closed = answer(sock)
        assert (status, body["status"], closed) == (408, "Request Timeout", True)
        assert "headers did not arrive within 3 s (COMFYQ_READ_TIMEOUT)" in body["message"]
    assert 2.5 < time.monotonic() - started < 15


def test_a_connection_that_says_nothing_is_closed_without_an_answer(api: str) -> None:
    sock = connect(api)
    started = time.monotonic()
    assert answer_closes(sock)
    assert 2.5 < time.monotonic() - started < 15


def test_a_kept_alive_connection_gets_a_fresh_deadline_for_each_request(api: str, app: Flask) -> None:
    _, key = user_key(app, "keeps-alive")
    sock = connect(api)
    request = f"GET /v1/account HTTP/1.1\r\nHost: comfyq\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
    for _ in range(3):  # each well inside the deadline, together past it
        sock.sendall(request)
        status, body, _ = answer(sock, wait_close=False)
        assert status == 200 and body["user"]["name"] == "keeps-alive"
        time.sleep(1.2)


def test_a_malformed_request_is_answered_in_the_one_error_shape(api: str) -> None:
    sock = connect(api)
    sock.sendall(b"GET /v1/account HTTP/1.1\r\nHost comfyq\r\n\r\n")
    status, body, closed = answer(sock)
    assert (status, body["code"], closed) == (400, 400, True)
    assert body["message"].startswith("the HTTP request is malformed") and body["errors"] == {}
