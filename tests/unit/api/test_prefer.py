"""RFC 7240 ``Prefer`` parsing, and when a submission asks the ASGI layer to hold its answer."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask

from comfyq.api.prefer import preferences, submitted_answer, wait_seconds
from comfyq.events.sse import HOLD_HEADER, HOLDER_HEADER
from tests.conftest import keyed_client, offline_app


@pytest.mark.parametrize("headers, found", [
    (["wait=10"], {"wait": "10"}),
    (["respond-async, wait=100"], {"respond-async": "", "wait": "100"}),
    (["Respond-Async", "WAIT = 5 ; foo=bar"], {"respond-async": "", "wait": "5"}),  # names ignore case; BWS
    (['wait="7"'], {"wait": "7"}),  # a word may be a quoted-string
    (['foo="a,b;c=d", wait=3'], {"foo": "a,b;c=d", "wait": "3"}),  # separators inside quotes separate nothing
    (["wait=1, wait=9"], {"wait": "1"}),  # RFC 7240 §2: only the first of a repeated preference counts
    (["wait=1", "wait=9"], {"wait": "1"}),
    (["return=minimal; x", "handling=lenient"], {"return": "minimal", "handling": "lenient"}),
    ([""], {}),
    ([",,, ;"], {}),
    (["wa it=3", "w@it=4", "wait=a b"], {}),  # not tokens: left out
])
def test_preferences_follow_rfc_7240(headers: list[str], found: dict[str, str]) -> None:
    assert preferences(headers) == found


@pytest.mark.parametrize("headers, most, seconds", [
    (["wait=10"], 60, 10),
    (["wait=100"], 60, 60),  # capped at COMFYQ_MAX_PREFER_WAIT
    (["wait=" + "9" * 5000], 60, 60),  # a huge number is the cap, not a huge int
    (["wait=0007"], 60, 7),
    (['respond-async, wait="12"'], 60, 12),
    (["wait=0"], 60, None),  # waiting no time is not waiting
    (["wait=10"], 0, None),  # COMFYQ_MAX_PREFER_WAIT=0: submissions never wait
    (["wait=-1"], 60, None),  # malformed: ignored, never refused (RFC 7240 §2)
    (["wait=1.5"], 60, None),
    (["wait=ten"], 60, None),
    (["wait"], 60, None),
    (["wait="], 60, None),
    (["respond-async"], 60, None),
    ([], 60, None),
])
def test_wait_seconds(headers: list[str], most: int, seconds: int | None) -> None:
    assert wait_seconds(headers, most) == seconds


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    flask_app = offline_app(f"sqlite:///{tmp_path}/t.db", tmp_path / "out")
    flask_app.config["MAX_PREFER_WAIT"] = 30
    return flask_app


@pytest.mark.parametrize("headers, statuses, status, answer_headers", [
    ({"Prefer": "wait=10"}, ["queued"], 202, {}),  # no holding server (plain WSGI): as without it
    ({HOLDER_HEADER: "1"}, ["queued"], 202, {}),  # no preference
    ({HOLDER_HEADER: "1", "Prefer": "wait=x"}, ["queued"], 202, {}),  # a malformed one
    ({HOLDER_HEADER: "1", "Prefer": "wait=10"}, ["succeeded", "failed"], 200, {"Preference-Applied": "wait=10"}),
    ({HOLDER_HEADER: "1", "Prefer": "wait=100"}, ["cancelled"], 200, {"Preference-Applied": "wait=30"}),
])
def test_a_submission_is_held_only_by_a_holding_server_for_a_valid_wait(
        app: Flask, headers: dict[str, str], statuses: list[str], status: int,
        answer_headers: dict[str, str]) -> None:
    with app.test_request_context("/v1/jobs", method="POST", headers=headers):
        assert submitted_answer(["j1"] * len(statuses), statuses, "/v1/jobs/j1") == (status, answer_headers)


def test_a_running_submission_asks_to_be_held_with_its_jobs_and_where_to_read_them(app: Flask) -> None:
    with app.test_request_context("/v1/batches", method="POST",
                                  headers={HOLDER_HEADER: "1", "Prefer": "respond-async, wait=100"}):
        status, headers = submitted_answer(["a", "b"], ["succeeded", "running"], "/v1/batches/b1")
    assert status == 202 and set(headers) == {HOLD_HEADER}
    assert json.loads(headers[HOLD_HEADER]) == {"wait": 30, "jobs": ["a", "b"], "then": "/v1/batches/b1"}


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/batches"])
def test_the_openapi_document_tells_of_prefer_and_both_answers(app: Flask, path: str) -> None:
    operation = keyed_client(app).get("/openapi.json").get_json()["paths"][path]["post"]
    assert [p["name"] for p in operation["parameters"] if p["in"] == "header"] == ["Prefer"]
    for status in ("200", "202"):
        answer = operation["responses"][status]
        assert "Preference-Applied" in answer["headers"] and "application/json" in answer["content"]
