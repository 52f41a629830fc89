"""Credits through real workers: debited at submission, refunded exactly once when a job fails or is cut short."""
from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from comfyq import create_app
from comfyq.accounts import credits
from comfyq.db.extensions import db
from comfyq.jobs.machine import JobStatus, transition
from comfyq.db.models import LedgerEntry, User
from tests.conftest import txt2img
from tests.integration.conftest import new_user, submit, wait_for, wait_until, with_key


def ledger(app: Flask, name: str) -> dict[str, Any]:
    """Return a user's balance, ledger sum and entries as (kind, amount, job_id)."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.name == name))
        entries = db.session.scalars(select(LedgerEntry).where(LedgerEntry.user_id == user.id)
                                     .order_by(LedgerEntry.id))
        return {"balance": user.balance, "sum": credits.ledger_sum(user.id),
                "entries": [(e.kind, e.amount, e.job_id) for e in entries]}


def of_job(book: dict[str, Any], job_id: str) -> list[tuple[str, int]]:
    """Return the (kind, amount) entries of one job."""
    return [(kind, amount) for kind, amount, job in book["entries"] if job == job_id]


def test_a_failed_node_and_a_workflow_the_instance_rejected_are_both_refunded(app: Flask) -> None:
    payer = new_user(app, "refund-fail", credits=10)
    failed = wait_for(payer, submit(payer, txt2img(sim={"8": {"fail": "VAE exploded"}}))["id"])
    # What the published catalogue tells is a 422 before any debit; what only the instance knows is refunded.
    rejected = wait_for(payer, submit(payer, txt2img(seed=2, sim={"4": {"reject": "no such model"}}))["id"])
    assert (failed["status"], failed["error"]["type"]) == ("failed", "execution_failed")
    assert (rejected["status"], rejected["error"]["type"]) == ("failed", "prompt_rejected")
    book = ledger(app, "refund-fail")
    assert of_job(book, failed["id"]) == [("debit", -1), ("refund", 1)]
    assert of_job(book, rejected["id"]) == [("debit", -1), ("refund", 1)]
    assert book["balance"] == book["sum"] == 10


def test_a_timed_out_job_is_refunded(app: Flask) -> None:
    payer = new_user(app, "refund-timeout", credits=5)
    # Limits travel with each message, so an API configured with short ones is enough.
    strict = with_key(create_app({**app.config, "SOFT_TIME_LIMIT": 2.0, "TIME_LIMIT_GRACE": 3.0}).test_client(),
                      payer.environ_base["HTTP_AUTHORIZATION"].split()[-1])
    job = wait_for(strict, submit(strict, txt2img(steps=200, sim={"3": {"step_seconds": 0.05}}))["id"], timeout=30)
    assert job["status"] == "timed_out"
    book = ledger(app, "refund-timeout")
    assert of_job(book, job["id"]) == [("debit", -1), ("refund", 1)]
    assert book["balance"] == book["sum"] == 5


def test_cancel_before_running_refunds_once_and_cancel_while_running_does_not(app: Flask) -> None:
    payer = new_user(app, "refund-cancel", credits=10, max_running=1)
    slow = submit(payer, txt2img(steps=100, sim={"3": {"step_seconds": 0.05}}))
    waiting = submit(payer, txt2img(seed=3))
    assert waiting["status"] == "pending"  # the user's one running slot is taken
    wait_for(payer, slow["id"], {"running"})
    assert payer.post(f"/v1/jobs/{waiting['id']}/cancel").get_json()["status"] == "cancelled"
    assert payer.post(f"/v1/jobs/{slow['id']}/cancel").get_json()["status"] == "cancelled"
    assert wait_for(payer, slow["id"])["status"] == "cancelled"
    with app.app_context():
        # A retried handler: the refund and the move are both refused the second time.
        assert credits.refund(waiting["id"]) == 0
        db.session.commit()
        assert not transition(waiting["id"], JobStatus.CANCELLED, [JobStatus.PENDING, JobStatus.QUEUED])
    book = ledger(app, "refund-cancel")
    assert of_job(book, waiting["id"]) == [("debit", -1), ("refund", 1)]
    assert of_job(book, slow["id"]) == [("debit", -1)]  # it held a GPU
    assert book["balance"] == book["sum"] == 9


def test_a_batch_is_debited_per_job_and_refused_whole_when_credits_fall_short(app: Flask) -> None:
    payer = new_user(app, "refund-batch", credits=3)
    body = {"template": "txt2img", "params": {"prompt": "a cat", "width": 64, "height": 64}}
    short = payer.post("/v1/batches", json={**body, "variants": [{"steps": 2}] * 4})
    assert short.status_code == 402
    assert short.get_json()["message"].startswith("this costs 4 credits and your balance is 3")
    assert short.get_json()["errors"] == {"balance": 3, "cost": 4}
    batch = payer.post("/v1/batches", json={**body, "variants": [{"steps": 2}, {"steps": 3}]}).get_json()
    for job in batch["jobs"]:
        assert wait_for(payer, job["id"])["status"] == "succeeded"
    book = ledger(app, "refund-batch")
    assert [kind for kind, _, _ in book["entries"]] == ["grant", "debit", "debit"]
    assert book["balance"] == book["sum"] == 1
    account = payer.get("/v1/account").get_json()
    assert account["balance"] == 1 and account["metered"] is True
    assert [e["kind"] for e in account["ledger"]] == ["debit", "debit", "grant"]  # newest first


def test_redis_refusing_a_job_refunds_it(app: Flask) -> None:
    payer = new_user(app, "refund-broker", credits=2)
    broken = create_app({**app.config, "BROKER_URL": "redis://127.0.0.1:1/0"})
    client = with_key(broken.test_client(), payer.environ_base["HTTP_AUTHORIZATION"].split()[-1])
    answer = client.post("/v1/jobs", json={"template": "txt2img", "params": {"prompt": "x", "steps": 2}})
    assert answer.status_code == 503 and "no credits were taken" in answer.get_json()["message"]
    book = ledger(app, "refund-broker")
    assert [(kind, amount) for kind, amount, _ in book["entries"]] == [("grant", 2), ("debit", -1), ("refund", 1)]
    assert book["balance"] == book["sum"] == 2
    wait_until(lambda: payer.get("/v1/jobs").get_json()["items"][0]["status"] == "cancelled")
