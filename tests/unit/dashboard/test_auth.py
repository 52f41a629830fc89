"""The dashboard without a session: the sign-in form, 401s in the one error shape, and the same-origin rule."""
from __future__ import annotations

import pytest
from flask import Flask

from comfyq.dashboard.auth import check_same_origin
from comfyq.errors import Forbidden


def test_without_a_session_the_page_is_the_sign_in_form_and_data_is_401(app: Flask) -> None:
    browser = app.test_client()
    page = browser.get("/dashboard")
    assert page.status_code == 200 and b'name="key"' in page.data and page.headers["Cache-Control"] == "no-store"
    for path in ("/dashboard/snapshot", "/dashboard/events", "/dashboard/outputs/j/a.png"):
        answer = browser.get(path)
        assert answer.status_code == 401, path
        assert set(answer.get_json()) == {"code", "status", "message", "errors"}
    cancel = browser.post("/dashboard/jobs/j/cancel", headers={"Origin": "http://localhost"})
    assert cancel.status_code == 401
    assert browser.get("/dashboard/static/dashboard.js").status_code == 200


def test_a_post_from_another_site_is_refused(app: Flask) -> None:
    browser = app.test_client()
    for headers in ({}, {"Origin": "https://evil.example"}, {"Referer": "http://localhost.evil/dashboard"}):
        answer = browser.post("/dashboard/sign-in", data={"key": "cq_x"}, headers=headers)
        assert answer.status_code == 403 and "dashboard page" in answer.get_json()["message"], headers


@pytest.mark.parametrize("headers, allowed", [
    ({"Origin": "http://localhost"}, True), ({"Referer": "http://localhost/dashboard"}, True),
    ({"Origin": "https://ops.example.org"}, True), ({"Origin": "http://localhost:8001"}, False),
])
def test_same_origin_means_this_server_or_its_public_url(app: Flask, headers: dict[str, str], allowed: bool) -> None:
    app.config["PUBLIC_URL"] = "https://ops.example.org/"
    with app.test_request_context("/dashboard/sign-in", method="POST", headers=headers):
        if allowed:
            check_same_origin()
        else:
            with pytest.raises(Forbidden):
                check_same_origin()


def test_a_wrong_key_gets_the_form_again_with_the_reason(app: Flask) -> None:
    answer = app.test_client().post("/dashboard/sign-in", data={"key": "cq_nope"},
                                    headers={"Origin": "http://localhost"})
    assert answer.status_code == 401 and b"unknown" in answer.data and "Set-Cookie" not in answer.headers
