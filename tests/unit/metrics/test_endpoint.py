"""/metrics on an app whose Redis and broker are down: who may scrape, and what a partial scrape says."""
from __future__ import annotations

from pathlib import Path

from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from comfyq.accounts import users
from comfyq.db.extensions import db
from comfyq.db.models import Job
from tests.conftest import offline_app, txt2img


def app_with_jobs(tmp_path: Path, **config: object) -> tuple[Flask, dict[str, str]]:
    """Return an offline app with an admin, a user and a few jobs in the DB; and their keys."""
    flask_app = offline_app(f"sqlite:///{tmp_path}/t.db", tmp_path / "out", METRICS_TOP_USERS=2, **config)
    keys = {}
    with flask_app.app_context():
        for name, role in (("boss", "admin"), ("ann", "user"), ("bea", "user"), ("cid", "user")):
            user = users.create_user(name, role, "expert")
            keys[name] = users.issue_key(user)[1]
            running = {"ann": 3, "bea": 1, "cid": 2}.get(name, 0)
            db.session.add_all(Job(user_id=user.id, status="running", queue="comfy", workflow=txt2img(), outputs=[])
                               for _ in range(running))
        db.session.add(Job(user_id=user.id, status="pending", queue="comfy", workflow=txt2img(), outputs=[]))
        db.session.commit()
    return flask_app, keys


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_only_admins_and_the_token_may_scrape(tmp_path: Path) -> None:
    flask_app, keys = app_with_jobs(tmp_path, METRICS_TOKEN="tok-123")
    http = flask_app.test_client()
    missing = http.get("/metrics")
    assert missing.status_code == 401 and missing.get_json()["message"].startswith("send an admin's API key")
    assert http.get("/metrics", headers={"Authorization": "Bearer tok-12"}).status_code == 401
    forbidden = http.get("/metrics", headers={"Authorization": f"Bearer {keys['ann']}"})
    assert forbidden.status_code == 403 and forbidden.get_json()["code"] == 403
    assert http.get("/metrics", headers={"Authorization": f"Bearer {keys['boss']}"}).status_code == 200
    assert http.get("/metrics", headers={"X-API-Key": "tok-123"}).status_code == 200


def test_no_token_is_accepted_when_none_is_set(tmp_path: Path) -> None:
    flask_app, _ = app_with_jobs(tmp_path)
    assert flask_app.test_client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def test_a_scrape_without_redis_still_tells_the_database_gauges(tmp_path: Path) -> None:
    flask_app, keys = app_with_jobs(tmp_path)
    answer = flask_app.test_client().get("/metrics", headers={"Authorization": f"Bearer {keys['boss']}"})
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain; version=0.0.4")
    found = samples(answer.get_data(as_text=True))
    up = {source: found[("comfyq_metrics_source_up", (("source", source),))] for source in ("redis", "database",
                                                                                            "broker")}
    assert up == {"redis": 0, "database": 1, "broker": 0}
    assert {state: found[("comfyq_jobs", (("state", state),))] for state in ("pending", "queued", "running")} == {
        "pending": 1, "queued": 0, "running": 6}
    # The two users running the most; the third is left out.
    assert {labels[0][1]: v for (name, labels), v in found.items() if name == "comfyq_user_running_jobs"} == {
        "ann": 3, "cid": 2}
    assert not any(name.startswith("comfyq_jobs_ended") for name, _ in found)
