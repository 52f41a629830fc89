"""Webhooks end to end: GPU workers end jobs, a real `comfyq webhooks` worker signs and POSTs to local receivers."""
from __future__ import annotations

import base64
import itertools
import json
import secrets
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy
import redis
from sqlalchemy import select
from flask import Flask
from flask.testing import FlaskClient
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from comfyq import create_app
from comfyq.webhooks import signing, attempts as webhook_delivery, deliveries as webhooks
from comfyq.jobs import broker
from comfyq.db.extensions import db
from comfyq.db.models import User, WebhookDelivery, WebhookSettings, utcnow
from comfyq.webhooks.addresses import parse_allowlist
from tests.conftest import Receiver, txt2img
from tests.integration.conftest import new_user, submit, wait_for, wait_until


NAMES = itertools.count()


@pytest.fixture(autouse=True)
def _webhooks_worker(webhooks_worker: Path) -> Path:
    """Every test here needs the webhooks worker running."""
    return webhooks_worker


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver that takes everything."""
    server = Receiver()
    yield server
    server.close()


def deliveries(client: FlaskClient, job_id: str) -> list[dict[str, Any]]:
    """Return the deliveries shown on a job."""
    return client.get(f"/v1/jobs/{job_id}").get_json()["webhook"]["deliveries"]


def settled(client: FlaskClient, job_id: str, count: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
    """Wait until a job has ``count`` deliveries, none pending; return them."""
    wait_until(lambda: len(found := deliveries(client, job_id)) == count
               and all(d["state"] != "pending" for d in found), timeout)
    return deliveries(client, job_id)


def moments(attempts: list[dict[str, Any]]) -> list[datetime]:
    """Return when each attempt was made."""
    return [datetime.fromisoformat(a["at"]) for a in attempts]


def verifying(client: FlaskClient, codes: tuple[int, ...] = (200,)) -> tuple[Receiver, str]:
    """Return a receiver that refuses (401) what does not verify with the user's secret per Standard Webhooks."""
    secret = client.get("/v1/account/webhook").get_json()["secret"]
    return Receiver(codes=codes, check=Webhook(secret).verify), secret


def test_a_failing_receiver_is_retried_with_growing_gaps_until_it_takes_the_signed_end(app: Flask) -> None:
    client = new_user(app, "hook-retry")
    flaky, secret = verifying(client, codes=(500, 500, 200))
    try:
        job = submit(client, txt2img(seed=11), webhook_url=flaky.url + "/hooks/comfyq?team=a")
        assert job["webhook"] == {"url": flaky.url + "/hooks/comfyq?team=a", "events": [], "deliveries": []}
        done = wait_for(client, job["id"])
        (delivery,) = settled(client, job["id"])
    finally:
        flaky.close()
    assert done["status"] == "succeeded" and delivery["event"] == "succeeded" and delivery["state"] == "delivered"
    attempts = delivery["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]  # none a 401: every attempt verified
    assert flaky.refusals == []
    assert attempts[0]["error"] == "answered 500: no" and attempts[2]["error"] is None
    assert all(a["duration_ms"] is not None and a["duration_ms"] >= 0 for a in attempts)
    first, second, third = moments(attempts)
    assert 0.44 < (second - first).total_seconds() < (third - second).total_seconds()  # 0.5 s, then 1 s (±10 %)
    gaps = [b.at - a.at for a, b in zip(flaky.hits, flaky.hits[1:])]
    assert len(flaky.hits) == 3 and gaps[0] < gaps[1]
    assert delivery["finished_at"] is not None and delivery["next_attempt_at"] is None
    # Every attempt sends the same event, signed with the owner's secret at the time of sending: a retry keeps
    # its webhook-id (the delivery's) and carries its own timestamp and so its own signature.
    assert secret.startswith("whsec_") and client.get("/v1/account/webhook").get_json()["secret"] == secret
    assert len({hit.body for hit in flaky.hits}) == 1
    assert {hit.headers["webhook-id"] for hit in flaky.hits} == {delivery["id"]}
    stamps = [int(hit.headers["webhook-timestamp"]) for hit in flaky.hits]
    assert stamps == sorted(stamps) and stamps[0] < stamps[-1]  # the attempts span more than a second
    assert abs(stamps[-1] - time.time()) < 120
    assert len({hit.headers["webhook-signature"] for hit in flaky.hits}) == len(set(stamps))
    last = flaky.hits[-1]
    assert Webhook(secret).verify(last.body, last.headers)["id"] == delivery["id"]
    retried = {**last.headers, "webhook-timestamp": str(stamps[0])}  # an old signature under a new timestamp
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(last.body, retried)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(last.body.replace(b"succeeded", b"failed"), last.headers)
    # The deprecated header, kept for one release, still verifies with the same secret.
    assert signing.verify(secret, last.body, last.headers["Comfyq-Signature"])
    assert not signing.verify(secret, last.body.replace(b"succeeded", b"failed"), last.headers["Comfyq-Signature"])
    assert not signing.verify("whsec_someone-else", last.body, last.headers["Comfyq-Signature"])
    assert last.headers["Content-Type"] == "application/json" and last.headers["Comfyq-Event"] == "succeeded"
    assert last.headers["Comfyq-Delivery"] == delivery["id"]
    body = json.loads(last.body)
    assert {k: body[k] for k in ("id", "event", "job_id", "status")} == {
        "id": delivery["id"], "event": "succeeded", "job_id": job["id"], "status": "succeeded"}
    assert datetime.fromisoformat(body["created"]) <= first
    (output,) = done["outputs"]
    assert body["outputs"] == [{"name": output["name"], "node_id": "9", "size": output["size"],
                                "sha256": output["sha256"], "content_type": output["content_type"], "expired": False,
                                "url": f"/v1/jobs/{job['id']}/outputs/{output['name']}"}]
    assert client.get(body["outputs"][0]["url"]).data[:4] == b"\x89PNG"  # the path is the API's download route


def test_jobs_naming_no_url_get_the_account_default_with_its_events(app: Flask) -> None:
    client = new_user(app, "hook-default")
    assert client.get("/v1/account/webhook").get_json()["url"] is None
    receiver, _ = verifying(client)
    try:
        default_and_rotation(app, client, receiver)
    finally:
        receiver.close()


def default_and_rotation(app: Flask, client: FlaskClient, receiver: Receiver) -> None:
    """Run the account default's test against ``receiver``."""
    saved = client.put("/v1/account/webhook", json={"url": receiver.url + "/default", "events": ["started"]})
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json() == client.get("/v1/account/webhook").get_json()
    secret = saved.get_json()["secret"]
    job = submit(client, txt2img(seed=12, steps=10, sim={"3": {"step_seconds": 0.05}}))
    assert (job["webhook"]["url"], job["webhook"]["events"]) == (receiver.url + "/default", ["started"])
    silent = submit(client, txt2img(seed=13), webhook_url=None)  # null: no webhook, default or not
    assert silent["webhook"] is None
    own_events = submit(client, txt2img(seed=14), webhook_events=[])  # the default URL, its own events
    assert own_events["webhook"]["events"] == []
    found = settled(client, job["id"], count=2)
    assert sorted(d["event"] for d in found) == ["started", "succeeded"]
    assert all(d["state"] == "delivered" and len(d["attempts"]) == 1 for d in found)
    wait_for(client, silent["id"])
    assert [d["event"] for d in settled(client, own_events["id"])] == ["succeeded"]
    mine = [hit for hit in receiver.hits if json.loads(hit.body)["job_id"] == job["id"]]
    assert sorted(json.loads(hit.body)["status"] for hit in mine) == ["running", "succeeded"]
    assert all(signing.verify(secret, hit.body, hit.headers["Comfyq-Signature"]) for hit in mine)
    assert receiver.refusals == []  # every delivery verified per Standard Webhooks as it came
    assert not any(json.loads(hit.body)["job_id"] == silent["id"] for hit in receiver.hits)

    # A job keeps the URL it was given; a new secret signs from now on; dropping the default keeps the secret.
    rotated = client.post("/v1/account/webhook/secret").get_json()
    assert rotated["secret"] != secret and rotated["url"] == receiver.url + "/default"
    assert client.delete("/v1/account/webhook").status_code == 204
    assert client.get("/v1/account/webhook").get_json() == {"url": None, "events": [], "secret": rotated["secret"]}
    assert client.delete("/v1/account/webhook").status_code == 204  # twice is harmless
    assert submit(client, txt2img(seed=15))["webhook"] is None
    assert client.get(f"/v1/jobs/{job['id']}").get_json()["webhook"]["url"] == receiver.url + "/default"
    # Someone else never sees this user's secret or default.
    assert new_user(app, "hook-other").get("/v1/account/webhook").get_json()["secret"] != rotated["secret"]


def test_a_secret_from_before_standard_webhooks_keeps_its_old_text_for_the_old_header_until_rotated(
        app: Flask) -> None:
    client = new_user(app, "hook-legacy")
    old = "whsec_" + secrets.token_urlsafe(32)  # how secrets were made before, as migration 0010 found them
    migrated = "whsec_" + base64.b64encode(base64.urlsafe_b64decode(old[len("whsec_"):] + "=")).decode()
    with app.app_context():
        user_id = db.session.scalars(select(User.id).where(User.name == "hook-legacy")).one()
        assert db.session.get(WebhookSettings, user_id) is None  # made on first need: not yet
        db.session.add(WebhookSettings(user_id=user_id, secret=migrated, legacy_secret=old, events=[]))
        db.session.commit()
    assert client.get("/v1/account/webhook").get_json()["secret"] == migrated
    receiver, _ = verifying(client)
    try:
        job = submit(client, txt2img(seed=26), webhook_url=receiver.url)
        assert settled(client, job["id"])[0]["state"] == "delivered"
        (hit,) = receiver.hits
        assert receiver.refusals == [] and Webhook(migrated).verify(hit.body, hit.headers)["job_id"] == job["id"]
        assert signing.verify(old, hit.body, hit.headers["Comfyq-Signature"])  # what its receivers stored
        # Rotated: one secret's text keys both headers from now on.
        rotated = client.post("/v1/account/webhook/secret").get_json()["secret"]
    finally:
        receiver.close()
    fresh, secret = verifying(client)
    try:
        after = submit(client, txt2img(seed=27), webhook_url=fresh.url)
        assert settled(client, after["id"])[0]["state"] == "delivered"
    finally:
        fresh.close()
    (last,) = fresh.hits
    assert secret == rotated and fresh.refusals == []
    assert Webhook(rotated).verify(last.body, last.headers)["job_id"] == after["id"]
    assert signing.verify(rotated, last.body, last.headers["Comfyq-Signature"])
    assert not signing.verify(old, last.body, last.headers["Comfyq-Signature"])


def test_a_started_subscription_sends_the_start_once(app: Flask, receiver: Receiver) -> None:
    client = new_user(app, "hook-started")
    job = submit(client, txt2img(seed=16, steps=20, sim={"3": {"step_seconds": 0.05}}),
                 webhook_url=receiver.url, webhook_events=["started", "started"])
    assert job["webhook"]["events"] == ["started"]
    found = settled(client, job["id"], count=2)
    assert [d["event"] for d in found] == ["started", "succeeded"]
    started = json.loads(next(hit.body for hit in receiver.hits if hit.headers["Comfyq-Event"] == "started"))
    assert started["status"] == "running" and "outputs" not in started and "error" not in started


def test_a_receiver_that_always_fails_ends_failed_after_the_retry_window(app: Flask) -> None:
    client = new_user(app, "hook-down")
    down = Receiver(codes=(503,))
    try:
        job = submit(client, txt2img(seed=17), webhook_url=down.url)
        (delivery,) = settled(client, job["id"], timeout=40)
    finally:
        down.close()
    assert delivery["state"] == "failed" and delivery["finished_at"] is not None
    attempts = delivery["attempts"]
    assert len(attempts) == len(down.hits) == 4  # 0.5, 1 and 2 s apart: the 5th, 4 s later, would fall past 5 s
    assert all(a["status_code"] == 503 and a["error"] == "answered 503: no" for a in attempts)
    created = datetime.fromisoformat(delivery["created_at"])
    assert moments(attempts)[-1] - created <= timedelta(seconds=5)
    gaps = [(b - a).total_seconds() for a, b in zip(moments(attempts), moments(attempts)[1:])]
    assert gaps == sorted(gaps)


def test_a_failed_job_and_an_unreachable_receiver(app: Flask) -> None:
    client = new_user(app, "hook-error")
    closed = Receiver()
    closed.close()  # nothing listens on its port any more
    job = submit(client, txt2img(seed=18, sim={"8": {"fail": "VAE exploded"}}), webhook_url=closed.url)
    assert wait_for(client, job["id"])["status"] == "failed"
    (delivery,) = settled(client, job["id"], timeout=40)
    assert delivery["event"] == "failed" and delivery["state"] == "failed"
    assert all(a["status_code"] is None and a["error"].startswith("could not connect:") for a in delivery["attempts"])
    assert "refused" in delivery["attempts"][0]["error"].lower()


@pytest.mark.parametrize("url, why", [
    ("http://10.1.2.3/", "10.1.2.3 is private"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is link-local"),
    ("http://127.0.0.2:8080/hook", "127.0.0.2 is loopback"),  # only 127.0.0.1 is allowlisted here
    ("http://[::1]/", "::1 is loopback"),
    ("http://[::ffff:a9fe:a9fe]/", "it carries the IPv4 address 169.254.169.254"),
    ("http://2130706434/", "127.0.0.2 is loopback"),  # the same address as a decimal number
    ("https://0.0.0.0/", "0.0.0.0 is unspecified"),
    # urllib3 would send this to 127.0.0.1 while urlsplit reads the host hooks.internal: refused as written.
    ("http://127.0.0.1:9\\@hooks.internal/x", "only the characters of RFC 3986"),
])
def test_internal_addresses_are_refused_at_submission_and_nothing_is_written(app: Flask, url: str, why: str) -> None:
    client = new_user(app, f"hook-ssrf-{next(NAMES)}", credits=5)
    graph = txt2img(seed=19)
    answer = client.post("/v1/jobs", json={"workflow": graph, "webhook_url": url})
    assert answer.status_code == 422
    assert why in answer.get_json()["message"] and "webhook_url" in answer.get_json()["errors"]["json"]
    batch = client.post("/v1/batches", json={"template": "txt2img", "params": {"prompt": "x"},
                                             "variants": [{"steps": 2}], "webhook_url": url})
    assert batch.status_code == 422 and why in batch.get_json()["message"]
    put = client.put("/v1/account/webhook", json={"url": url})
    assert put.status_code == 422 and why in put.get_json()["message"]
    assert client.get("/v1/jobs").get_json()["total"] == 0
    assert client.get("/v1/account").get_json()["balance"] == 5
    assert client.get("/v1/account/webhook").get_json()["url"] is None


def test_a_hostname_is_checked_when_sent_and_refused_if_it_resolves_to_an_address_not_allowed(
        app: Flask, receiver: Receiver) -> None:
    client = new_user(app, "hook-dns")
    port = receiver.url.rsplit(":", 1)[1]
    job = submit(client, txt2img(seed=20), webhook_url=f"http://localhost:{port}/by-name")
    (sent,) = settled(client, job["id"])
    assert sent["state"] == "delivered"  # localhost resolves to 127.0.0.1, which this stack allows
    assert receiver.hits[-1].headers["Host"] == f"localhost:{port}"
    # The same delivery under a stack that allows nothing internal: refused, untried, the reason kept.
    strict = create_app({**app.config, "WEBHOOK_ALLOW": parse_allowlist("")})
    with strict.app_context():
        again = webhooks.record(job["id"], sent_by(app, sent["id"]), "succeeded", "succeeded",
                                f"http://localhost:{port}/by-name")
        db.session.commit()
        assert webhook_delivery.attempt(again.id) is None
    hits = len(receiver.hits)
    refused = next(d for d in deliveries(client, job["id"]) if d["id"] == again.id)
    assert refused["state"] == "refused" and refused["finished_at"] is not None
    (attempt,) = refused["attempts"]
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("localhost resolves to 127.0.0.1, which is loopback")
    assert len(receiver.hits) == hits


def sent_by(app: Flask, delivery_id: str) -> str:
    """Return the owner of a delivery."""
    with app.app_context():
        return db.session.get(WebhookDelivery, delivery_id).user_id


def test_progress_is_sent_once_to_subscribers_only_and_never_retried(app: Flask) -> None:
    client = new_user(app, "hook-progress")
    down = Receiver(codes=(500, 200))
    try:
        slow = txt2img(seed=21, steps=60, sim={"3": {"step_seconds": 0.05}})
        job = submit(client, slow, webhook_url=down.url, webhook_events=["progress"])
        plain = submit(client, txt2img(seed=22, steps=60, sim={"3": {"step_seconds": 0.05}}), webhook_url=down.url)
        wait_for(client, job["id"], {"running"})
        wait_for(client, plain["id"], {"running"})
        with app.app_context():
            webhooks.progress(job["id"], {"node": "3", "label": "Sampling", "value": 12, "max": 60})
            webhooks.progress(plain["id"], {"node": "3", "value": 12, "max": 60})  # not subscribed: nothing
        wait_until(lambda: [d["state"] for d in deliveries(client, job["id"])] == ["failed"], timeout=20)
        (failed,) = deliveries(client, job["id"])
        with app.app_context():
            webhooks.progress(job["id"], {"node": "3", "label": "Sampling", "value": 30, "max": 60})
        # Only the newest progress delivery is kept: a long job does not pile them up.
        wait_until(lambda: [d["state"] for d in deliveries(client, job["id"])] == ["delivered"], 20)
        wait_for(client, job["id"])
        wait_for(client, plain["id"])
        with app.app_context():
            webhooks.progress(job["id"], {"value": 60, "max": 60})  # ended: progress is over
        found = settled(client, job["id"], count=2)
    finally:
        down.close()
    assert [d["event"] for d in found] == ["progress", "succeeded"] and failed["id"] != found[0]["id"]
    assert [len(d["attempts"]) for d in (failed, found[0])] == [1, 1]  # the 500 was not retried
    assert [d["event"] for d in deliveries(client, plain["id"])] == ["succeeded"]
    body = json.loads(next(hit.body for hit in down.hits if hit.headers["Comfyq-Event"] == "progress"
                           and json.loads(hit.body)["progress"]["value"] == 30))
    assert body["status"] == "running" and body["progress"] == {"node": "3", "label": "Sampling", "value": 30,
                                                                 "max": 60}


def test_a_lost_message_is_sent_again_and_a_duplicate_never_sends_twice(app: Flask, receiver: Receiver) -> None:
    client = new_user(app, "hook-lost")
    job = submit(client, txt2img(seed=23), webhook_url=receiver.url)
    (first,) = settled(client, job["id"])
    with app.app_context():
        lost = webhooks.record(job["id"], sent_by(app, first["id"]), "succeeded", "succeeded", receiver.url)
        lost.next_attempt_at = utcnow() - timedelta(minutes=2)  # due long ago, and no message was ever sent
        db.session.commit()
        assert webhooks.resend_overdue()["resent"] == [lost.id]
        assert webhooks.resend_overdue()["resent"] == []  # sent again just now: not overdue any more
    wait_until(lambda: any(hit.headers["Comfyq-Delivery"] == lost.id for hit in receiver.hits), timeout=20)
    with app.app_context():
        webhooks.send(first["id"])  # a duplicate of a delivered one
        webhooks.send(lost.id)
    time.sleep(1.5)
    assert [hit.headers["Comfyq-Delivery"] for hit in receiver.hits].count(first["id"]) == 1
    assert [hit.headers["Comfyq-Delivery"] for hit in receiver.hits].count(lost.id) == 1
    assert all(len(d["attempts"]) == 1 for d in deliveries(client, job["id"]))


def test_a_retry_waiting_past_the_visibility_timeout_stays_with_its_worker(app: Flask, receiver: Receiver,
                                                                           rds: redis.Redis,
                                                                           webhooks_worker: Path) -> None:
    client = new_user(app, "hook-lease")
    job = submit(client, txt2img(seed=24), webhook_url=receiver.url)
    (first,) = settled(client, job["id"])
    wait = 12.0  # past the visibility timeout (8 s) and a restore pass (2 s)
    with app.app_context():
        later = webhooks.record(job["id"], sent_by(app, first["id"]), "succeeded", "succeeded", receiver.url)
        later.next_attempt_at = utcnow() + timedelta(seconds=wait)
        db.session.commit()
        message = app.extensions["celery"].send_task(broker.DELIVER_WEBHOOK, args=[later.id], queue="webhooks",
                                                     countdown=wait)
    deadline = time.monotonic() + wait - 1
    while time.monotonic() < deadline:
        assert rds.llen("webhooks") == 0  # never restored to the queue: the worker renews what it holds
        time.sleep(0.25)
    wait_until(lambda: any(hit.headers["Comfyq-Delivery"] == later.id for hit in receiver.hits), timeout=10)
    time.sleep(1)
    assert [hit.headers["Comfyq-Delivery"] for hit in receiver.hits].count(later.id) == 1
    # Received once: a message put back on the queue would have been received a second time.
    assert webhooks_worker.read_text().count(f"[{message.id}] received") == 1
    shown = next(d for d in deliveries(client, job["id"]) if d["id"] == later.id)
    assert shown["state"] == "delivered" and len(shown["attempts"]) == 1


@pytest.mark.parametrize("extra", [
    {"webhook_url": 123}, {"webhook_url": ""}, {"webhook_url": "ftp://example.com/x"}, {"webhook_url": "http://"},
    {"webhook_url": "http:///path"}, {"webhook_url": "example.com/hook"}, {"webhook_url": "http://exa mple.com/"},
    {"webhook_url": "https://example.com/" + "x" * 2048}, {"webhook_url": "http://example.com:99999/"},
    {"webhook_url": "http://[::1/"}, {"webhook_url": "javascript:alert(1)"}, {"webhook_url": "http://a\x00b.com/"},
    {"webhook_url": "https://example.com/", "webhook_events": "started"},
    {"webhook_url": "https://example.com/", "webhook_events": ["finished"]},
    {"webhook_url": "https://example.com/", "webhook_events": [1]},
    {"webhook_url": "https://example.com/", "webhook_events": None},
    {"webhook_url": None, "webhook_events": ["progress"]},
    {"webhook_events": ["started"]},  # no URL and no account default
])
def test_bad_webhook_fields_are_a_422_saying_what_to_fix(app: Flask, extra: dict[str, Any]) -> None:
    client = new_user(app, f"hook-bad-{next(NAMES)}")
    answer = client.post("/v1/jobs", json={"workflow": txt2img(seed=25), **extra})
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["message"].split(":")[0].split(".")[0] in ("webhook_url", "webhook_events")
    assert client.get("/v1/jobs").get_json()["total"] == 0


def test_bad_account_webhook_bodies_are_4xx_never_500(app: Flask) -> None:
    client = new_user(app, "hook-bad-account")
    for body in ({}, {"url": None}, {"url": "ftp://x"}, {"url": "https://example.com", "events": ["nope"]},
                 {"url": "https://example.com", "events": "started"}, [], "x"):
        answer = client.put("/v1/account/webhook", json=body)
        assert answer.status_code == 422, (body, answer.get_json())
        assert answer.get_json()["message"]
    assert "give the URL to call" in client.put("/v1/account/webhook", json={}).get_json()["message"]
    garbled = client.put("/v1/account/webhook", data="{not json", content_type="application/json")
    assert garbled.status_code == 400
    assert client.get("/v1/account/webhook").get_json()["url"] is None


def test_the_worker_sends_progress_every_few_seconds_to_subscribers(app: Flask, receiver: Receiver) -> None:
    client = new_user(app, "hook-worker-progress")
    # About 6 s of sampling: the worker reports progress each COMFYQ_WEBHOOK_PROGRESS_EVERY (5 s).
    job = submit(client, txt2img(seed=24, steps=60, sim={"3": {"step_seconds": 0.1}}), webhook_url=receiver.url,
                 webhook_events=["progress"])
    found = settled(client, job["id"], count=2, timeout=60)
    assert [(d["event"], d["state"]) for d in found] == [("progress", "delivered"), ("succeeded", "delivered")]
    sent = json.loads(next(hit.body for hit in receiver.hits if hit.headers["Comfyq-Event"] == "progress"))
    assert sent["job_id"] == job["id"] and sent["status"] == "running"
    assert sent["progress"]["label"] == "KSampler" and 0 < sent["progress"]["value"] < 60  # raw: the class names it
    assert 0 < sent["progress"]["fraction"] < 1 and sent["progress"]["nodes_total"] == 7


def test_a_page_of_jobs_reads_their_deliveries_at_once(app: Flask, receiver: Receiver) -> None:
    client = new_user(app, "hook-page")
    for seed in range(30, 36):
        settled(client, submit(client, txt2img(seed=seed), webhook_url=receiver.url)["id"])
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    with app.app_context():
        engine = db.engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", count)
    try:
        sizes = {}
        for size in (2, 6):
            statements.clear()
            page = client.get(f"/v1/jobs?page_size={size}").get_json()
            assert [len(job["webhook"]["deliveries"]) for job in page["items"]] == [1] * size
            sizes[size] = len(statements)
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", count)
    assert sizes[2] == sizes[6], sizes  # not one query per job
