"""A comfyq app with one of everything, for tests that walk the whole API: real Redis, no workers.

Jobs stay queued (no worker takes them); one is moved to ``succeeded`` by hand,
with a stored PNG output and a webhook delivery that has one failed attempt.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from comfyq.accounts import users as accounts, credits, limits
from comfyq import create_app
from comfyq.config.settings import parse_instances
from comfyq.db.extensions import db
from comfyq.jobs.machine import JobStatus, transition
from comfyq.db.models import Output, WebhookAttempt, WebhookDelivery, utcnow

HOOK = "https://hooks.example.com/comfyq"


@dataclass
class Seeded:
    """The app, the admin's key and the ids of what was made."""

    app: Flask
    admin_key: str
    user: str  # a student with credits, ledger entries and a key (never the admin: routes may disable it)
    user_key_id: str
    job_id: str  # succeeded, with an output and a webhook delivery
    queued_job_id: str
    output: str
    batch_id: str
    upload_id: str

    def client(self, key: str | None = None) -> FlaskClient:
        """Return a test client sending ``key`` (the admin's by default)."""
        test_client = self.app.test_client()
        test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key or self.admin_key}"
        return test_client


def png(size: int = 8) -> bytes:
    """Return a small PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def seed(redis_url: str, folder: Path) -> Seeded:
    """Build an app on ``redis_url`` and a SQLite file in ``folder``, and fill it."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/comfyq.db", "DATA_DIR": str(folder),
                      "OUTPUT_DIR": str(folder / "outputs"), "INPUT_DIR": str(folder / "inputs"),
                      "REDIS_URL": redis_url, "BROKER_URL": redis_url,
                      "INSTANCES": parse_instances("gpu0=http://127.0.0.1:9,gpu1=http://127.0.0.1:9")})
    with app.app_context():
        root = accounts.create_user("root", "admin", "expert")
        limits.set_limits(root, {"rate_per_minute": 0, "max_waiting": 0})
        admin_key = accounts.issue_key(root, "seed")[1]
        ada = accounts.create_user("ada", "student", "novice")
        credits.change(ada, 500, "grant", "term 1", root)
        credits.change(ada, -20, "adjustment", "correction", root)
        ada_key, ada_plain = accounts.issue_key(ada, "ada's laptop")
        ada_key_id = ada_key.id
    seeded = Seeded(app, admin_key, "ada", ada_key_id, "", "", "comfyq_00001_.png", "", "")
    admin, student = seeded.client(), seeded.client(ada_plain)
    assert admin.put("/v1/account/webhook", json={"url": HOOK, "events": ["started"]}).status_code == 200
    body = {"template": "txt2img", "params": {"prompt": "a red square", "steps": 4}}
    done = admin.post("/v1/jobs", json=dict(body, webhook_url=HOOK))
    queued = student.post("/v1/jobs", json=body)
    batch = admin.post("/v1/batches", json={"template": "txt2img", "params": {"prompt": "x"},
                                            "variants": [{"steps": 2}, {"steps": 3}]})
    upload = admin.post("/v1/uploads", data={"file": (io.BytesIO(png()), "red.png")})
    for answer in (done, queued, batch, upload):
        assert answer.status_code in (201, 202), answer.get_json()
    seeded.job_id, seeded.queued_job_id = done.get_json()["id"], queued.get_json()["id"]
    seeded.batch_id, seeded.upload_id = batch.get_json()["id"], upload.get_json()["id"]
    _finish(seeded)
    return seeded


def _finish(seeded: Seeded) -> None:
    """Move the admin's job to succeeded with one stored PNG, and fail the first try of its webhook delivery."""
    with seeded.app.app_context():
        store = seeded.app.extensions["stores"].outputs
        key = store.relative(seeded.job_id, seeded.output)
        data = png()
        with store.writer(key) as fh:
            fh.write(data)
        db.session.add(Output(job_id=seeded.job_id, name=seeded.output, node_id="9", kind="output",
                              content_type="image/png", size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                              path=key))
        assert transition(seeded.job_id, JobStatus.RUNNING, [JobStatus.QUEUED], instance="gpu0")
        assert transition(seeded.job_id, JobStatus.SUCCEEDED, [JobStatus.RUNNING])
        delivery = db.session.scalars(db.select(WebhookDelivery).where(
            WebhookDelivery.job_id == seeded.job_id, WebhookDelivery.event == "succeeded")).one()
        db.session.add(WebhookAttempt(delivery_id=delivery.id, number=1, at=utcnow(), status_code=500,
                                      error="the receiver answered 500", duration_ms=12))
        delivery.attempts = 1
        db.session.commit()
