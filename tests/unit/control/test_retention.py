"""Retention: outputs past the age lose their files, keep their rows, and show as expired (410 to download)."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask, current_app

from comfyq.accounts import users as accounts
from comfyq import create_app
from comfyq.config.settings import parse_instances
from comfyq.db.extensions import db
from comfyq.db.models import Job, Output, User, utcnow
from comfyq.control.retention import expire_outputs


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.db", "OUTPUT_DIR": str(tmp_path / "out"),
                       "REDIS_URL": "redis://127.0.0.1:1/0", "BROKER_URL": "redis://127.0.0.1:1/0",
                       "INSTANCES": parse_instances("gpu0=http://127.0.0.1:1"), "OUTPUT_RETENTION_HOURS": 24.0})


def finished_job(owner: User, age_hours: float) -> str:
    """Store a succeeded job of ``owner`` with one output written ``age_hours`` ago; return its id."""
    store = current_app.extensions["stores"].outputs
    job = Job(user_id=owner.id, status="succeeded", queue="comfy", workflow={}, soft_time_limit=60)
    db.session.add(job)
    db.session.flush()
    with store.writer(store.relative(job.id, "out.png")) as fh:
        fh.write(b"png bytes")
    db.session.add(Output(job_id=job.id, name="out.png", node_id="9", kind="output", content_type="image/png",
                          size=9, sha256="0" * 64, path=store.relative(job.id, "out.png"),
                          created_at=utcnow() - timedelta(hours=age_hours)))
    db.session.commit()
    return job.id


def test_old_outputs_expire_and_fresh_ones_stay(app: Flask, tmp_path: Path) -> None:
    with app.app_context():
        owner = accounts.create_user("ada", "user")
        key = accounts.issue_key(owner)[1]
        old, fresh = finished_job(owner, 30), finished_job(owner, 2)
        assert expire_outputs() == {"expired_jobs": [old]}
        assert expire_outputs() == {"expired_jobs": []}  # once only
    assert not (tmp_path / "out" / old / "out.png").exists()
    assert (tmp_path / "out" / fresh / "out.png").read_bytes() == b"png bytes"
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    (gone,) = client.get(f"/v1/jobs/{old}").get_json()["outputs"]
    assert gone["expired"] is True and gone["url"] is None and gone["sha256"] == "0" * 64
    refused = client.get(f"/v1/jobs/{old}/outputs/out.png")
    assert refused.status_code == 410 and "expired: retention deleted it" in refused.get_json()["message"]
    (kept,) = client.get(f"/v1/jobs/{fresh}").get_json()["outputs"]
    assert kept["expired"] is False and client.get(kept["url"]).data == b"png bytes"


def test_no_retention_keeps_everything(app: Flask) -> None:
    app.config["OUTPUT_RETENTION_HOURS"] = 0.0
    with app.app_context():
        job = finished_job(accounts.create_user("bo", "user"), 10_000)
        assert expire_outputs() == {"expired_jobs": []}
        assert db.session.get(Output, 1).expired_at is None and db.session.get(Job, job) is not None
