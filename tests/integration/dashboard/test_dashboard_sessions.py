"""Dashboard sessions and figures on the real stack: cookie sign-in, a teacher's view, fleet actions, sign-out."""
from __future__ import annotations

import redis
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import txt2img
from tests.integration.conftest import submit, wait_for, with_key, wait_until

SAME_ORIGIN = {"Origin": "http://localhost"}


def signed_in(app: Flask, key: str) -> FlaskClient:
    """Return a browser-like client that signed in with ``key`` (and holds only the cookie)."""
    browser = app.test_client()
    answer = browser.post("/dashboard/sign-in", data={"key": key}, headers=SAME_ORIGIN)
    assert answer.status_code == 303 and answer.headers["Location"] == "/dashboard", answer.data
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie and key not in cookie
    return browser


def test_only_admins_and_teachers_sign_in_and_the_cookie_ends_on_sign_out(app: Flask, keys: dict[str, str]) -> None:
    for name in ("alice", "svc", "stud"):
        refused = app.test_client().post("/dashboard/sign-in", data={"key": keys[name]}, headers=SAME_ORIGIN)
        assert refused.status_code == 403 and b"admins and teachers" in refused.data, name
    browser = signed_in(app, keys["root"])
    page = browser.get("/dashboard")
    assert page.status_code == 200 and b"dashboard.js" in page.data and keys["root"].encode() not in page.data
    assert browser.get("/dashboard/snapshot").get_json()["operator"] == {
        "name": "root", "role": "admin", "acts_on_fleet": True}
    assert browser.post("/dashboard/sign-out", headers=SAME_ORIGIN).status_code == 303
    assert browser.get("/dashboard/snapshot").status_code == 401


def test_a_teacher_sees_her_student_s_jobs_only_and_cancels_them(app: Flask, keys: dict[str, str]) -> None:
    student = with_key(app.test_client(), keys["stud"])
    other = with_key(app.test_client(), keys["alice"])
    made = student.post("/v1/jobs", json={"template": "txt2img", "params": {"prompt": "a dashboard", "steps": 2,
                                                                            "width": 64, "height": 64}})
    assert made.status_code == 202, made.get_json()
    mine = made.get_json()["id"]
    theirs = submit(other, txt2img(seed=72, steps=2))["id"]
    wait_for(student, mine)
    wait_for(other, theirs)
    teacher = signed_in(app, keys["teach"])
    snap = teacher.get("/dashboard/snapshot").get_json()
    shown = {job["id"]: job for job in snap["jobs"]}
    assert mine in shown and theirs not in shown and shown[mine]["user"] == "stud"
    assert snap["operator"]["acts_on_fleet"] is False and {i["name"] for i in snap["instances"]} == {"gpu0", "gpu1"}
    thumb = teacher.get(shown[mine]["thumbnails"][0])
    assert thumb.status_code == 200 and thumb.data[:4] == b"\x89PNG"
    assert teacher.get(f"/dashboard/outputs/{theirs}/x.png").status_code == 404
    assert teacher.post("/dashboard/instances/gpu0/close", headers=SAME_ORIGIN).status_code == 403
    assert teacher.post(f"/dashboard/jobs/{theirs}/cancel", headers=SAME_ORIGIN).status_code == 404
    ended = teacher.post(f"/dashboard/jobs/{mine}/cancel", headers=SAME_ORIGIN)
    assert ended.status_code == 409 and set(ended.get_json()) == {"code", "status", "message", "errors"}


def test_every_queue_is_listed_and_a_held_intake_closes(app: Flask, keys: dict[str, str],
                                                               rds: redis.Redis) -> None:
    admin = signed_in(app, keys["root"])
    queues = admin.get("/dashboard/snapshot").get_json()["queues"]
    names = [q["name"] for q in queues]
    assert names[0] == "comfy" and names[-2:] == ["control", "webhooks"]
    assert {"comfy.gpu0", "comfy.gpu1", "comfy.need.sdxl"} <= set(names)  # gpu1's capability queue too
    assert all(q["depth"] == rds.llen(q["name"]) for q in queues), queues  # an idle stack: nothing moves
    assert admin.post("/dashboard/instances/gpu0/close").status_code == 403  # no Origin: not from the page
    try:
        assert admin.post("/dashboard/instances/gpu0/close", headers=SAME_ORIGIN).status_code == 200

        def gpu0() -> dict[str, object]:
            rows = admin.get("/dashboard/snapshot").get_json()["instances"]
            return next(row for row in rows if row["name"] == "gpu0")

        wait_until(lambda: gpu0()["intake"] == "closed" and gpu0()["intake_held_by"] == "root", 30)
    finally:
        assert admin.post("/dashboard/instances/gpu0/open", headers=SAME_ORIGIN).status_code == 200
    wait_until(lambda: gpu0()["intake"] == "open" and gpu0()["intake_held_by"] is None, 30)
