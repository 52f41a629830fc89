"""Webhook deliveries on SQLite and PostgreSQL: recorded with the move, attempted once each, retried, refused."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask

from comfyq.accounts import users as accounts
from comfyq.webhooks import attempts as webhook_delivery, deliveries as webhooks
from comfyq.db.extensions import db
from comfyq.jobs.machine import JobStatus, transition
from comfyq.db.models import Job, User, WebhookDelivery, aware, utcnow
from comfyq.webhooks.addresses import parse_allowlist
from tests.conftest import Receiver, offline_app


@pytest.fixture
def app(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    flask_app = offline_app(database_url, tmp_path, WEBHOOK_ALLOW=parse_allowlist("127.0.0.1"), WEBHOOK_BACKOFF=0.3,
                            WEBHOOK_RETRY_FOR=100.0, WEBHOOK_TIMEOUT=2.0)
    sent: list[str] = []
    monkeypatch.setattr(webhooks, "send", sent.append)  # no broker here: what would go to the webhooks queue
    flask_app.extensions["sent"] = sent
    with flask_app.app_context():
        yield flask_app


@pytest.fixture
def owner(app: Flask) -> User:
    return accounts.create_user("ada", "user")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def new_job(owner: User, url: str | None, events: list[str] | None = None, status: str = "queued") -> str:
    """Store a job of ``owner`` with a webhook; return its id."""
    job = Job(user_id=owner.id, status=status, queue="comfy", workflow={}, soft_time_limit=60,
              webhook_url=url, webhook_events=events or [])
    db.session.add(job)
    db.session.commit()
    return job.id


def delivery(owner: User, url: str, event: str = "succeeded") -> WebhookDelivery:
    """Record a pending delivery of a fresh job to ``url``; return it."""
    found = webhooks.record(new_job(owner, url, status="succeeded"), owner.id, event, "succeeded", url)
    db.session.commit()
    return found


def deliveries(job_id: str) -> list[WebhookDelivery]:
    """Return a job's deliveries as stored now."""
    return webhooks.deliveries_of([job_id]).get(job_id, [])


def reread(delivery_id: str) -> WebhookDelivery:
    """Return a delivery as stored now."""
    found = db.session.get(WebhookDelivery, delivery_id, populate_existing=True)
    assert found is not None
    return found


def test_an_end_records_its_delivery_in_the_moves_commit_and_a_start_only_if_asked(app: Flask, owner: User) -> None:
    ends = new_job(owner, "http://127.0.0.1:9/hook")
    assert transition(ends, JobStatus.RUNNING, [JobStatus.QUEUED])
    assert deliveries(ends) == []  # started was not asked for
    assert transition(ends, JobStatus.FAILED, [JobStatus.RUNNING], error={"type": "execution_failed", "message": "x"})
    (end,) = deliveries(ends)
    assert (end.event, end.state, end.attempts, app.extensions["sent"]) == ("failed", "pending", 0, [end.id])
    assert end.payload["error"] == {"type": "execution_failed", "message": "x"} and "outputs" not in end.payload
    starts = new_job(owner, "http://127.0.0.1:9/hook", ["started"])
    assert transition(starts, JobStatus.RUNNING, [JobStatus.QUEUED])
    assert transition(starts, JobStatus.QUEUED, [JobStatus.RUNNING])  # its instance went away
    assert transition(starts, JobStatus.RUNNING, [JobStatus.QUEUED])  # a second start sends nothing
    assert [(d.event, d.payload["status"]) for d in deliveries(starts)] == [("started", "running")]
    silent = new_job(owner, None, status="pending")
    assert transition(silent, JobStatus.CANCELLED, [JobStatus.PENDING])
    assert deliveries(silent) == []


def test_a_delivered_delivery_is_never_sent_again(owner: User, receiver: Receiver) -> None:
    sent = delivery(owner, receiver.url)
    assert webhook_delivery.attempt(sent.id) is None
    assert webhook_delivery.attempt(sent.id) is None  # a duplicate message
    stored = reread(sent.id)
    assert (stored.state, stored.attempts, len(receiver.hits)) == ("delivered", 1, 1)
    assert [(a.number, a.status_code, a.error) for a in stored.attempt_log] == [(1, 200, None)]


def test_a_message_early_for_a_scheduled_retry_is_dropped(owner: User, receiver: Receiver) -> None:
    early = delivery(owner, receiver.url)
    early.next_attempt_at = utcnow() + timedelta(seconds=60)
    db.session.commit()
    assert webhook_delivery.attempt(early.id) is None
    assert (reread(early.id).attempts, receiver.hits) == (0, [])


def test_a_failure_is_retried_later_and_the_last_attempt_stays_inside_the_window(app: Flask, owner: User) -> None:
    down = Receiver(codes=(500,))
    try:
        failing = delivery(owner, down.url)
        countdown = webhook_delivery.attempt(failing.id)
        assert countdown is not None and 0.27 <= countdown <= 0.33
        stored = reread(failing.id)
        assert stored.state == "pending" and stored.attempts == 1
        assert 0.2 < (aware(stored.next_attempt_at) - utcnow()).total_seconds() < 0.34
        app.config["WEBHOOK_RETRY_FOR"] = 0.0  # the window is over: the next failure is the last
        stored.next_attempt_at = utcnow()
        db.session.commit()
        assert webhook_delivery.attempt(failing.id) is None
    finally:
        down.close()
    stored = reread(failing.id)
    assert (stored.state, stored.attempts, len(down.hits)) == ("failed", 2, 2)
    assert [a.error for a in stored.attempt_log] == ["answered 500: no"] * 2


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    config = {"WEBHOOK_BACKOFF": 5.0, "WEBHOOK_BACKOFF_MAX": 3600.0}
    for number, base in ((1, 5), (2, 10), (3, 20), (8, 640), (10, 2560), (11, 3600), (500, 3600)):
        assert base * 0.9 <= webhook_delivery.backoff(number, config) <= base * 1.1


def test_redirects_are_not_followed(owner: User) -> None:
    moved = Receiver(codes=(302,))
    try:
        hop = delivery(owner, moved.url + "/old")
        assert webhook_delivery.attempt(hop.id) is not None
    finally:
        moved.close()
    (tried,) = reread(hop.id).attempt_log
    assert tried.status_code == 302 and "a redirect to '/elsewhere': redirects are not followed" in tried.error
    assert [hit.headers["Comfyq-Event"] for hit in moved.hits] == ["succeeded"]


def test_progress_is_tried_once(owner: User) -> None:
    down = Receiver(codes=(500,))
    try:
        news = delivery(owner, down.url, event="progress")
        assert webhook_delivery.attempt(news.id) is None
    finally:
        down.close()
    assert (reread(news.id).state, reread(news.id).attempts) == ("failed", 1)


def test_a_hostname_resolving_to_an_address_not_allowed_is_refused_untried(app: Flask, owner: User,
                                                                           receiver: Receiver) -> None:
    app.config["WEBHOOK_ALLOW"] = parse_allowlist("")
    port = receiver.url.rsplit(":", 1)[1]
    internal = delivery(owner, f"http://localhost:{port}/")
    assert webhook_delivery.attempt(internal.id) is None
    stored = reread(internal.id)
    assert stored.state == "refused" and stored.finished_at is not None and receiver.hits == []
    assert stored.attempt_log[0].error.startswith("localhost resolves to 127.0.0.1, which is loopback")
    app.config["WEBHOOK_ALLOW"] = parse_allowlist("localhost")  # named: allowed whatever it resolves to
    allowed = delivery(owner, f"http://localhost:{port}/")
    assert webhook_delivery.attempt(allowed.id) is None and reread(allowed.id).state == "delivered"


def test_overdue_deliveries_are_resent_once_a_minute_and_lost_progress_given_up(app: Flask, owner: User) -> None:
    lost, stale, fresh = (delivery(owner, "http://127.0.0.1:9/", event) for event in ("failed", "progress", "failed"))
    for late in (lost, stale):
        late.next_attempt_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    app.extensions["sent"].clear()
    assert webhooks.resend_overdue() == {"resent": [lost.id], "expired_progress": [stale.id]}
    assert app.extensions["sent"] == [lost.id] and reread(stale.id).state == "failed"
    assert webhooks.resend_overdue() == {"resent": [], "expired_progress": []}
    assert reread(fresh.id).state == "pending"
