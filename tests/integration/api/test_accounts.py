"""Accounts: every /v1 route needs a key; roles limit what a key may do; nobody sees another's work."""
from __future__ import annotations

import hashlib
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from comfyq.db.extensions import db
from comfyq.db.models import ApiKey
from tests.conftest import txt2img
from tests.integration.conftest import wait_for, with_key

TEMPLATE = {"template": "txt2img", "params": {"prompt": "a cat", "steps": 2, "width": 64, "height": 64}}


@pytest.fixture(scope="module")
def work(app: Flask, keys: dict[str, str]) -> dict[str, Any]:
    """Alice's finished raw job and batch, and a student's template job."""
    alice, student = as_user(app, keys["alice"]), as_user(app, keys["stud"])
    job = alice.post("/v1/jobs", json={"workflow": txt2img(seed=4242)}).get_json()
    done = wait_for(alice, job["id"])
    assert done["status"] == "succeeded", done
    batch = alice.post("/v1/batches", json={**TEMPLATE, "variants": [{"steps": 2}]}).get_json()
    homework = student.post("/v1/jobs", json=TEMPLATE).get_json()
    return {"job": job["id"], "output": done["outputs"][0]["name"], "batch": batch["id"], "homework": homework["id"]}


def as_user(app: Flask, key: str | None) -> FlaskClient:
    return with_key(app.test_client(), key)


@pytest.fixture(scope="module")
def revoked(app: Flask, keys: dict[str, str]) -> str:
    """A key of alice's that an admin revoked."""
    root = as_user(app, keys["root"])
    issued = root.post("/v1/admin/users/alice/keys", json={"label": "to revoke"}).get_json()
    assert root.post(f"/v1/admin/keys/{issued['id']}/revoke").status_code == 200
    return issued["key"]


# route, then the expected status for: no key, revoked key, owner (alice), other user (bob), admin (root)
MATRIX = [
    ("GET", "/v1/jobs/{job}", (401, 401, 200, 404, 200)),
    ("GET", "/v1/jobs/{job}/outputs/{output}", (401, 401, 200, 404, 200)),
    ("POST", "/v1/jobs/{job}/cancel", (401, 401, 409, 404, 409)),
    ("GET", "/v1/batches/{batch}", (401, 401, 200, 404, 200)),
    ("GET", "/v1/jobs", (401, 401, 200, 200, 200)),
    ("GET", "/v1/templates", (401, 401, 200, 200, 200)),
    ("GET", "/v1/templates/txt2img", (401, 401, 200, 200, 200)),
    ("GET", "/v1/account", (401, 401, 200, 200, 200)),
    ("GET", "/v1/instances", (401, 401, 403, 403, 200)),
    ("GET", "/v1/admin/users", (401, 401, 403, 403, 200)),
    ("POST", "/v1/admin/users/bob/keys", (401, 401, 403, 403, 201)),
    ("POST", "/v1/jobs:estimate", (401, 401, 200, 200, 200)),
    ("POST", "/v1/jobs", (401, 401, 202, 202, 202)),
    ("POST", "/v1/batches", (401, 401, 202, 202, 202)),
    ("POST", "/v1/admin/users/bob/credits", (401, 401, 403, 403, 201)),
    ("GET", "/v1/admin/users/bob/ledger", (401, 401, 403, 403, 200)),
    ("PATCH", "/v1/admin/users/bob/limits", (401, 401, 403, 403, 200)),
]
BODIES = {"/v1/jobs:estimate": TEMPLATE, "/v1/jobs": TEMPLATE, "/v1/batches": {**TEMPLATE, "variants": [{}]},
          "/v1/admin/users/bob/keys": {}, "/v1/admin/users/bob/credits": {"amount": 1},
          "/v1/admin/users/bob/limits": {"rate_per_minute": None}}


@pytest.mark.parametrize("method, route, expected", MATRIX, ids=[f"{m} {r}" for m, r, _ in MATRIX])
def test_auth_matrix(app: Flask, keys: dict[str, str], work: dict[str, Any], revoked: str, method: str,
                     route: str, expected: tuple[int, ...]) -> None:
    path = route.format(**work)
    body = BODIES.get(route)
    callers = (None, revoked, keys["alice"], keys["bob"], keys["root"])
    got = tuple(as_user(app, key).open(path, method=method, json=body).status_code for key in callers)
    assert got == expected
    answer = as_user(app, keys["bob"]).open(path, method=method, json=body)
    if answer.status_code in (401, 403, 404):
        error = answer.get_json()
        assert set(error) == {"code", "status", "message", "errors"} and error["message"]


def test_a_foreign_job_is_not_found_exactly_like_a_missing_one(app: Flask, keys: dict[str, str],
                                                               work: dict[str, Any]) -> None:
    bob = as_user(app, keys["bob"])
    foreign = bob.get(f"/v1/jobs/{work['job']}").get_json()
    missing = bob.get("/v1/jobs/00000000-0000-0000-0000-000000000000").get_json()
    assert foreign["message"].replace(work["job"], "X") == missing["message"].replace(
        "00000000-0000-0000-0000-000000000000", "X")


def test_listings_show_only_what_the_caller_may_see(app: Flask, keys: dict[str, str], work: dict[str, Any]) -> None:
    def listed(name: str) -> set[str]:
        return {j["id"] for j in as_user(app, keys[name]).get("/v1/jobs?page_size=100").get_json()["items"]}

    assert work["job"] in listed("alice") and work["job"] not in listed("bob")
    assert work["homework"] in listed("teach") and work["job"] not in listed("teach")  # a teacher sees the class
    assert {work["job"], work["homework"]} <= listed("root")
    assert as_user(app, keys["teach"]).get(f"/v1/jobs/{work['homework']}").status_code == 200


@pytest.mark.parametrize("user, body, status, fragment", [
    ("stud", {"workflow": txt2img()}, 403, "may only submit templates"),
    ("newbie", {"workflow": txt2img()}, 403, "may only submit templates"),
    ("newbie", {**TEMPLATE, "mode": "expert"}, 403, "novice account may only set novice parameters"),
    ("stud", {**TEMPLATE, "mode": "expert"}, 403, "novice account"),
    ("alice", {"workflow": txt2img(seed=77)}, 202, None),
    ("newbie", TEMPLATE, 202, None),
])
def test_who_may_submit_what(app: Flask, keys: dict[str, str], user: str, body: dict[str, Any], status: int,
                             fragment: str | None) -> None:
    answer = as_user(app, keys[user]).post("/v1/jobs", json=body)
    assert answer.status_code == status, answer.get_json()
    if fragment:
        assert fragment in answer.get_json()["message"]


def test_keys_are_stored_hashed_and_work_in_either_header(app: Flask, keys: dict[str, str]) -> None:
    plain = keys["bob"]
    key_id, secret = plain[3:15], plain[16:]
    with app.app_context():
        stored = db.session.scalar(select(ApiKey).where(ApiKey.id == key_id))
        assert stored.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest() and secret not in repr(
            vars(stored))
    raw = app.test_client()
    assert raw.get("/v1/account", headers={"X-API-Key": plain}).get_json()["user"]["name"] == "bob"
    assert raw.get("/v1/account", headers={"Authorization": f"Bearer {plain[:-1]}x"}).status_code == 401
    assert raw.get("/v1/account", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    assert raw.get("/healthz").status_code == 200  # health needs no key
    spec = raw.get("/openapi.json").get_json()  # neither does the API's description, which says how
    schemes = spec["components"]["securitySchemes"]
    assert spec["security"] == [{"apiKey": []}, {"apiKeyHeader": []}] and schemes["apiKey"]["scheme"] == "bearer"
    assert schemes["apiKeyHeader"] == dict(schemes["apiKeyHeader"], type="apiKey", name="X-API-Key")


def test_disabling_a_user_stops_their_keys_at_once(app: Flask, keys: dict[str, str]) -> None:
    root, bob = as_user(app, keys["root"]), as_user(app, keys["bob"])
    created = root.post("/v1/admin/users", json={"name": "carol", "role": "user"}).get_json()
    assert created["role"] == "user" and created["level"] == "novice"
    carol = as_user(app, root.post("/v1/admin/users/carol/keys", json={}).get_json()["key"])
    assert carol.get("/v1/account").status_code == 200
    assert root.post("/v1/admin/users/carol/disable").get_json()["disabled"] is True
    denied = carol.get("/v1/account")
    assert denied.status_code == 401 and "disabled" in denied.get_json()["message"]
    assert root.post("/v1/admin/users/carol/enable").status_code == 200
    assert carol.get("/v1/account").status_code == 200
    again = root.post("/v1/admin/users", json={"name": "carol", "role": "user"})
    assert again.status_code == 409 and "exists already" in again.get_json()["message"]
    assert root.post("/v1/admin/users", json={"name": "x", "role": "wizard"}).status_code == 422
    assert bob.post("/v1/admin/users", json={"name": "y", "role": "admin"}).status_code == 403
