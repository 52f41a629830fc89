"""The dashboard's work figures, as an admin and as a teacher sees them."""
from __future__ import annotations

from flask import Flask

from comfyq.dashboard.activity import credits_today, failing_webhooks, pending_of, recent_jobs
from comfyq.db.extensions import db
from comfyq.db.models import LedgerEntry, Output, User, WebhookAttempt, WebhookDelivery
from tests.unit.dashboard.conftest import add_job


def url(job_id: str, name: str) -> str:
    """Name an output the way the test can check."""
    return f"/o/{job_id}/{name}"


def test_a_teacher_sees_her_students_jobs_and_an_admin_everyone_s(app: Flask, people: dict[str, str]) -> None:
    from comfyq.accounts import users

    with app.app_context():
        sams = add_job(people["sam"], "succeeded", ago=20, instance="gpu0")
        db.session.add_all([Output(job_id=sams, name="a.png", node_id="9", kind="image", content_type="image/png",
                                   size=1, sha256="0" * 64, path="x/a.png"),
                            Output(job_id=sams, name="a.json", node_id="9", kind="file",
                                   content_type="application/json", size=1, sha256="0" * 64, path="x/a.json")])
        db.session.commit()
        olgas = add_job(people["olga"], "failed", ago=10, error={"message": "node 3 exploded"})
        teacher = db.session.get(User, people["tess"])
        shown = recent_jobs(teacher, url)
        assert [job["id"] for job in shown] == [sams]
        assert shown[0]["user"] == "sam" and shown[0]["thumbnails"] == [f"/o/{sams}/a.png"]  # images only
        admin = users.create_user("root", "admin")
        everyone = recent_jobs(admin, url)
        assert [job["id"] for job in everyone] == [olgas, sams]  # newest first
        assert everyone[0]["error"] == "node 3 exploded" and everyone[0]["thumbnails"] == []


def test_pending_users_come_in_fair_share_order(app: Flask, people: dict[str, str]) -> None:
    from comfyq.accounts import users

    with app.app_context():
        add_job(people["olga"], "pending", ago=30)
        add_job(people["sam"], "pending", ago=20)
        add_job(people["sam"], "pending", ago=10)
        db.session.get(User, people["olga"]).last_served = 5  # served before: sam, never served, goes first
        db.session.commit()
        admin = users.create_user("root", "admin")
        assert [(p["turn"], p["user"], p["pending"]) for p in pending_of(admin)] == [(1, "sam", 2), (2, "olga", 1)]
        assert [p["user"] for p in pending_of(db.session.get(User, people["tess"]))] == ["sam"]


def test_credits_today_are_debits_less_refunds_of_visible_users(app: Flask, people: dict[str, str]) -> None:
    with app.app_context():
        jobs = [add_job(people[name], "succeeded") for name in ("sam", "sam", "olga")]
        db.session.add_all([
            LedgerEntry(user_id=people["sam"], kind="debit", amount=-5, job_id=jobs[0]),
            LedgerEntry(user_id=people["sam"], kind="debit", amount=-3, job_id=jobs[1]),
            LedgerEntry(user_id=people["sam"], kind="refund", amount=3, job_id=jobs[1]),
            LedgerEntry(user_id=people["sam"], kind="grant", amount=100),
            LedgerEntry(user_id=people["olga"], kind="debit", amount=-7, job_id=jobs[2]),
        ])
        db.session.commit()
        assert credits_today(db.session.get(User, people["tess"])) == 5
        from comfyq.accounts import users
        assert credits_today(users.create_user("root", "admin")) == 12


def test_failing_webhooks_show_their_last_answer(app: Flask, people: dict[str, str]) -> None:
    from comfyq.accounts import users

    with app.app_context():
        job = add_job(people["sam"], "succeeded")
        common = {"job_id": job, "user_id": people["sam"], "event": "succeeded", "url": "http://h/", "payload": {}}
        failing = WebhookDelivery(state="pending", attempts=2, **common)
        given_up = WebhookDelivery(state="failed", attempts=5, **common)
        fine = WebhookDelivery(state="delivered", attempts=1, **common)
        db.session.add_all([failing, given_up, fine])
        db.session.flush()
        db.session.add_all([WebhookAttempt(delivery_id=failing.id, number=1, status_code=500),
                            WebhookAttempt(delivery_id=given_up.id, number=1, error="connection refused")])
        db.session.commit()
        shown = {d["id"]: d for d in failing_webhooks(users.create_user("root", "admin"))}
        assert set(shown) == {failing.id, given_up.id}
        assert shown[failing.id]["last"] == "HTTP 500" and shown[given_up.id]["last"] == "connection refused"
        assert failing_webhooks(db.session.get(User, people["olga"])) == []
