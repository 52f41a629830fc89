"""Credits on SQLite and PostgreSQL: debits, refunds once, grants, and a ledger that sums to the balance."""
from __future__ import annotations

from typing import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from comfyq.accounts import users as accounts, credits
from comfyq.errors import Conflict, InvalidRequest, PaymentRequired
from comfyq.db.extensions import db
from comfyq.jobs.machine import JobStatus, transition
from comfyq.db.models import Job, LedgerEntry, User
from tests.conftest import offline_app


@pytest.fixture
def app(tmp_path, database_url: str) -> Iterator[Flask]:
    flask_app = offline_app(database_url, tmp_path)
    with flask_app.app_context():
        yield flask_app


def charged_job(user: User, cost: int, status: str = "queued") -> Job:
    """Store a job of ``user`` debited ``cost`` credits, as submission does."""
    credits.reserve(user, cost)
    job = Job(user_id=user.id, status=status, queue="comfy", workflow={}, soft_time_limit=60, cost=cost)
    db.session.add(job)
    db.session.flush()
    credits.record_debits(user, [job])
    db.session.commit()
    return job


def assert_balanced(user: User) -> None:
    """The ledger sums to the stored balance."""
    assert credits.balance_of(user.id) == credits.ledger_sum(user.id)


@pytest.mark.parametrize("to, came_from, due", [
    ("failed", "running", True),  # a node failed, or the instance refused the graph: never the user's loss
    ("failed", "queued", True),
    ("timed_out", "running", True),
    ("cancelled", "pending", True),
    ("cancelled", "queued", True),
    ("cancelled", "running", False),  # it held a GPU
    ("succeeded", "running", False),
])
def test_who_gets_a_refund(to: str, came_from: str, due: bool) -> None:
    assert credits.refund_due(to, came_from) is due


@pytest.mark.parametrize("error", [{"type": "instance_unavailable"}, {"type": "prompt_rejected"}])
def test_debit_refund_and_the_ledger_sum(app: Flask, error: dict[str, str]) -> None:
    user = accounts.create_user("payer", "user")
    credits.change(user, 10, "grant", "start", None)
    job = charged_job(user, 4, status="running")
    job.workflow = {"1": {"class_type": "SaveImage", "inputs": {}}}  # a raw workflow: no template
    db.session.commit()
    assert credits.balance_of(user.id) == 6
    assert transition(job.id, JobStatus.FAILED, [JobStatus.RUNNING], error=error)
    assert credits.balance_of(user.id) == 10
    assert credits.refund(job.id) == 0  # a second handler finds the refund made
    db.session.commit()
    assert not transition(job.id, JobStatus.FAILED, [JobStatus.RUNNING], error=error)  # nor can it end again
    assert credits.balance_of(user.id) == 10
    kinds = db.session.scalars(select(LedgerEntry.kind).where(LedgerEntry.job_id == job.id).order_by(LedgerEntry.id))
    assert list(kinds) == ["debit", "refund"]
    assert_balanced(user)


def test_no_overdraft_and_402_says_balance_and_cost(app: Flask) -> None:
    user = accounts.create_user("poor", "user")
    credits.change(user, 3, "grant", None, None)
    charged_job(user, 3)
    with pytest.raises(PaymentRequired) as refused:
        charged_job(user, 1)
    assert refused.value.errors == {"balance": 0, "cost": 1}
    assert "this costs 1 credits and your balance is 0" in refused.value.message
    assert credits.balance_of(user.id) == 0 and db.session.query(Job).count() == 1
    assert_balanced(user)


def test_adjustments_never_leave_a_negative_balance(app: Flask) -> None:
    user = accounts.create_user("adjusted", "user")
    admin = accounts.create_user("boss", "admin")
    credits.change(user, 5, "grant", "gift", admin)
    credits.change(user, -2, "adjustment", "typo", admin)
    with pytest.raises(Conflict, match="adjusted has 3 credits; removing 4 would leave the balance below zero"):
        credits.change(user, -4, "adjustment", None, admin)
    with pytest.raises(InvalidRequest):
        credits.change(user, -1, "grant", None, admin)
    entries = credits.recent(user)
    assert [(e.kind, e.amount, e.actor_id) for e in entries] == [("adjustment", -2, admin.id), ("grant", 5, admin.id)]
    assert_balanced(user)


def test_free_roles_are_not_charged_and_402_comes_in_the_error_shape(app: Flask) -> None:
    svc, payer = accounts.create_user("svc", "service", "expert"), accounts.create_user("payer", "user", "expert")
    keys = {name: accounts.issue_key(user)[1] for name, user in (("svc", svc), ("payer", payer))}
    client: FlaskClient = app.test_client()
    body = {"template": "txt2img", "params": {"prompt": "x"}}
    refused = client.post("/v1/jobs", json=body, headers={"Authorization": f"Bearer {keys['payer']}"})
    assert refused.status_code == 402
    assert set(refused.get_json()) == {"code", "status", "message", "errors"}
    assert refused.get_json()["status"] == "Payment Required"
    assert db.session.query(Job).count() == 0
    # The service pays nothing, so Redis being down is what stops it (and its job is kept, cancelled).
    free = client.post("/v1/jobs", json=body, headers={"Authorization": f"Bearer {keys['svc']}"})
    assert free.status_code == 503
    assert credits.balance_of(svc.id) == 0 and credits.recent(svc) == []
