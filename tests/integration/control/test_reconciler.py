"""The reconciler repairs jobs whose recorded state disagrees with the broker and the workers, once."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import redis
from flask import Flask
from flask.testing import FlaskClient

from comfyq.comfy import ComfyClient
from comfyq.control import reconciler
from comfyq.accounts.users import get_user
from comfyq.db.extensions import db
from comfyq.db.models import Job, utcnow
from comfyq.jobs.broker import task_ids
from tests.conftest import txt2img
from tests.integration.conftest import wait_for


def _job(app: Flask, **fields: object) -> str:
    """Write a job row of the service user directly, as if its history had gone wrong; return its id."""
    with app.app_context():
        owner = get_user("svc").id
        job = Job(queue="comfy", workflow=txt2img(seed=901), soft_time_limit=5.0, outputs=[], user_id=owner,
                  **fields)
        db.session.add(job)
        db.session.commit()
        return job.id


def test_a_queued_job_without_a_message_is_enqueued_again_once(app: Flask, client: FlaskClient) -> None:
    job_id = _job(app, status="queued", updated_at=utcnow() - timedelta(minutes=5))
    results: list[dict] = []
    with app.app_context():
        passes = [threading.Thread(target=lambda: results.append(_reconcile(app))) for _ in range(3)]
        for thread in passes:
            thread.start()
        for thread in passes:
            thread.join()
    requeued = [r for r in results if job_id in r.get("requeued", [])]
    assert len(requeued) == 1, results
    assert wait_for(client, job_id)["status"] == "succeeded"


def _reconcile(app: Flask) -> dict:
    with app.app_context():
        return reconciler.reconcile()


def test_a_young_queued_job_without_a_message_is_left_alone(app: Flask, rds: redis.Redis, keys: dict[str, str]) -> None:
    young = _job(app, status="queued")
    with app.app_context():
        assert young not in reconciler.reconcile()["requeued"]
        db.session.execute(db.update(Job).where(Job.id == young).values(status="cancelled"))
        db.session.commit()


def test_broker_scan_finds_waiting_and_unacked_messages(app: Flask, rds: redis.Redis) -> None:
    queues = [q.name for q in app.extensions["celery"].conf.task_queues]
    # No worker of the test stack consumes the control queue, so the message stays put.
    rds.lpush("control", json.dumps({"headers": {"id": "waiting-in-a-queue"}}))
    rds.hset("unacked", "tag-x", json.dumps([{"headers": {"id": "held-by-a-worker"}}, "", "comfy"]))
    rds.hset("unacked", "tag-y", "not json")
    try:
        with app.app_context():
            seen = task_ids(rds, queues)
    finally:
        rds.delete("control")
        rds.hdel("unacked", "tag-x", "tag-y")
    assert {"waiting-in-a-queue", "held-by-a-worker"} <= seen


def test_a_running_job_past_its_hard_limit_without_a_worker_times_out(app: Flask, client: FlaskClient) -> None:
    job_id = _job(app, status="running", instance="gpu0", started_at=utcnow() - timedelta(seconds=600))
    with app.app_context():
        first = reconciler.reconcile()
        second = reconciler.reconcile()
    assert job_id in first["timed_out"] and job_id not in second["timed_out"]
    done = client.get(f"/v1/jobs/{job_id}").get_json()
    assert done["status"] == "timed_out" and "no live worker" in done["error"]["message"]


def test_a_running_job_without_a_message_is_sent_to_its_instance_and_its_prompt_followed(
        app: Flask, client: FlaskClient, sims: list) -> None:
    # As a job placed ahead whose held message Redis lost: running on gpu0, its prompt there, no message anywhere.
    job_id = _job(app, status="running", instance="gpu0", prompt_id=None, attempts=1,
                  started_at=utcnow(), updated_at=utcnow() - timedelta(minutes=5))
    with app.app_context():
        db.session.execute(db.update(Job).where(Job.id == job_id).values(
            prompt_id=job_id, updated_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
        with ComfyClient(sims[0].url) as comfy:
            comfy.queue_prompt(txt2img(seed=901), job_id)
        assert job_id in reconciler.reconcile()["requeued"]
        assert job_id not in reconciler.reconcile()["requeued"]  # its message is there now
    done = wait_for(client, job_id)
    assert done["status"] == "succeeded" and done["attempts"] == 1 and len(done["outputs"]) == 1
    assert sims[0].journal_counts("started")[job_id] == 1
