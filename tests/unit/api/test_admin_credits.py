"""Admins grant and adjust credits and set limits, over the API and with `comfyq credits` / `comfyq users limits`."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from comfyq.accounts import users as accounts
from comfyq.api.fields import TIMESTAMP_PATTERN
from comfyq.cli.main import main
from tests.conftest import offline_app, keyed_client


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return offline_app(f"sqlite:///{tmp_path}/t.db", tmp_path)


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return keyed_client(app)


def test_a_teaching_platform_creates_a_student_with_credits_and_small_caps(admin: FlaskClient) -> None:
    created = admin.post("/v1/admin/users", json={"name": "ada", "role": "student", "credits": 20,
                                                  "limits": {"max_running": 1, "max_waiting": 3}})
    assert created.status_code == 201
    assert created.get_json()["balance"] == 20
    assert created.get_json()["limits"] == {"max_running": 1, "max_waiting": 3, "rate_per_minute": None,
                                            "weight": None}
    granted = admin.post("/v1/admin/users/ada/credits", json={"amount": 5, "note": "week 2"})
    assert granted.status_code == 201 and granted.get_json()["kind"] == "grant"
    taken = admin.post("/v1/admin/users/ada/credits", json={"amount": -30, "kind": "adjustment"})
    assert taken.status_code == 409 and "ada has 25 credits; removing 30" in taken.get_json()["message"]
    assert admin.post("/v1/admin/users/ada/credits", json={"amount": -5, "kind": "adjustment"}).status_code == 201
    ledger = admin.get("/v1/admin/users/ada/ledger").get_json()
    assert [(e["kind"], e["amount"]) for e in ledger["items"]] == [("adjustment", -5), ("grant", 5), ("grant", 20)]
    assert (ledger["page"], ledger["page_size"], ledger["total"]) == (1, 20, 3)
    cleared = admin.patch("/v1/admin/users/ada/limits", json={"max_waiting": None, "rate_per_minute": 2, "weight": 3})
    assert cleared.get_json()["limits"] == {"max_running": 1, "max_waiting": None, "rate_per_minute": 2, "weight": 3}
    assert cleared.get_json()["balance"] == 20


@pytest.mark.parametrize("path, body, fragment", [
    ("/v1/admin/users/ada/credits", {"amount": -1}, "a grant adds a positive number"),
    ("/v1/admin/users/ada/credits", {"amount": "ten"}, "amount: Not a valid integer"),
    ("/v1/admin/users/ada/credits", {"amount": 1, "kind": "gift"}, "kind: Must be one of"),
    ("/v1/admin/users/nobody/credits", {"amount": 1}, "no user 'nobody'"),
    ("/v1/admin/users/ada/limits", {"max_running": 0}, "max_running: Must be greater than or equal to 1"),
    ("/v1/admin/users/ada/limits", {"burst": 1}, "burst: Unknown field"),
])
def test_bad_admin_requests_say_what_to_fix(admin: FlaskClient, path: str, body: dict, fragment: str) -> None:
    admin.post("/v1/admin/users", json={"name": "ada", "role": "student"})
    method = admin.patch if path.endswith("limits") else admin.post
    answer = method(path, json=body)
    assert 400 <= answer.status_code < 500 and fragment in answer.get_json()["message"], answer.get_json()


def test_the_cli_grants_adjusts_shows_and_sets_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("COMFYQ_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("COMFYQ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COMFYQ_REDIS_URL", "redis://127.0.0.1:1/0")
    runner = CliRunner()
    created = runner.invoke(main, ["users", "create", "kim", "--role", "user", "--credits", "7", "--no-key"])
    assert created.exit_code == 0, created.output
    assert runner.invoke(main, ["credits", "grant", "kim", "3", "--note", "bonus"]).output.strip() == \
        "kim: +3 credits (grant); balance 10"
    assert runner.invoke(main, ["credits", "adjust", "kim", "-4"]).output.strip() == \
        "kim: -4 credits (adjustment); balance 6"
    refused = runner.invoke(main, ["credits", "adjust", "kim", "-40"])
    assert refused.exit_code == 1 and "kim has 6 credits; removing 40" in refused.output
    shown = runner.invoke(main, ["credits", "show", "kim"]).output.splitlines()
    assert shown[0] == "kim: balance 6" and "bonus" in shown[2] and len(shown) == 4
    assert all(re.fullmatch(TIMESTAMP_PATTERN, line.split()[0]) for line in shown[1:]), shown
    limited = runner.invoke(main, ["users", "limits", "kim", "--running", "1", "--rate", "0"])
    assert limited.output.strip() == ("kim: max_running 1 (user), max_waiting 1000 (global), "
                                      "rate_per_minute 0 (user), weight 1 (default)")
    assert "1 (user)" not in runner.invoke(main, ["users", "limits", "kim", "--clear", "running"]).output


def test_raising_a_cap_admits_pending_jobs_at_once(app: Flask, admin: FlaskClient) -> None:
    from comfyq.db.extensions import db
    from comfyq.db.models import Job

    admin.post("/v1/admin/users", json={"name": "ada", "role": "student", "limits": {"max_running": 1}})
    with app.app_context():
        ada = accounts.get_user("ada")
        db.session.add_all(Job(user_id=ada.id, status=status, queue="comfy", workflow={}, soft_time_limit=60)
                           for status in ("running", "pending", "pending"))
        db.session.commit()
    admin.patch("/v1/admin/users/ada/limits", json={"max_running": 2})
    with app.app_context():
        assert sorted(s for (s,) in db.session.query(Job.status)) == ["pending", "queued", "running"]


def test_the_ledger_pages_like_the_job_list(admin: FlaskClient) -> None:
    admin.post("/v1/admin/users", json={"name": "ada", "role": "student"})
    for amount in range(1, 6):
        assert admin.post("/v1/admin/users/ada/credits", json={"amount": amount}).status_code == 201

    def page(query: str) -> tuple[list[int], int, int, int]:
        found = admin.get(f"/v1/admin/users/ada/ledger?{query}").get_json()
        return [e["amount"] for e in found["items"]], found["page"], found["page_size"], found["total"]

    assert page("page_size=2") == ([5, 4], 1, 2, 5)
    assert page("page=2&page_size=2") == ([3, 2], 2, 2, 5)
    assert page("page=3&page_size=2") == ([1], 3, 2, 5)
    assert page("page=4&page_size=2") == ([], 4, 2, 5)
    assert page("") == ([5, 4, 3, 2, 1], 1, 20, 5)
    for bad in ("page=0", "page_size=101", "page_size=x"):
        refused = admin.get(f"/v1/admin/users/ada/ledger?{bad}")
        assert refused.status_code == 422 and bad.split("=")[0] in refused.get_json()["message"]
