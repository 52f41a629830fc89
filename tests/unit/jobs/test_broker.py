"""The broker module: what each send path puts on which queue, and how kombu's Redis layout is read."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest
from flask import Flask
from kombu.exceptions import OperationalError

from comfyq import create_app
from comfyq.db.extensions import db
from comfyq.db.models import Job
from comfyq.jobs import broker
from tests.conftest import txt2img
from tests.unit.jobs.fakes import FakeCelery


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    flask_app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.db", "OUTPUT_DIR": str(tmp_path),
                            "REDIS_URL": "redis://127.0.0.1:1/0", "TIME_LIMIT_GRACE": 30.0})
    flask_app.extensions["celery"] = FakeCelery()
    with flask_app.app_context():
        yield flask_app


def job_of(queue: str = "comfy") -> Job:
    job = Job(status="queued", queue=queue, workflow=txt2img(), soft_time_limit=60.0)
    db.session.add(job)
    db.session.commit()
    return job


def test_enqueue_sends_the_job_as_its_own_task_with_its_limits(app: Flask) -> None:
    job = job_of("comfy.gpu1")
    broker.enqueue(job)
    broker.enqueue(job, "comfy.gpu0", countdown=2.0, limits=(5.0, 8.0))
    shown = f"job {job.id}, raw workflow"  # what Flower shows as the task's arguments
    assert app.extensions["celery"].sent == [
        ("comfyq.run_job", {"args": [job.id], "task_id": job.id, "queue": "comfy.gpu1", "countdown": None,
                            "soft_time_limit": 60.0, "time_limit": 90.0, "ignore_result": True,
                            "argsrepr": shown, "kwargsrepr": "queue comfy.gpu1"}),
        ("comfyq.run_job", {"args": [job.id], "task_id": job.id, "queue": "comfy.gpu0", "countdown": 2.0,
                            "soft_time_limit": 5.0, "time_limit": 8.0, "ignore_result": True,
                            "argsrepr": shown, "kwargsrepr": "queue comfy.gpu0"})]


def test_flower_reads_a_run_as_its_job_template_and_instance(app: Flask) -> None:
    job = job_of()
    job.template, job.template_version = "txt2img", 3
    assert broker.job_repr(job) == f"job {job.id}, template txt2img v3"
    assert broker.run_repr(job, "comfy") == "any instance"
    job.instance_requested = "gpu1"
    assert broker.run_repr(job, "comfy.gpu1") == "instance gpu1"


def test_a_send_the_broker_refuses_raises_for_jobs_but_not_for_webhooks(app: Flask) -> None:
    app.extensions["celery"] = FakeCelery(failing=OperationalError("broker down"))
    with pytest.raises(broker.SEND_ERRORS):
        broker.enqueue(job_of())
    broker.send_delivery("d1")  # left to the resend pass
    broker.revoke("j1")  # an optimisation: the worker skips an ended job anyway


def test_deliveries_go_to_the_webhooks_queue_and_revokes_to_the_workers(app: Flask) -> None:
    broker.send_delivery("d1")
    broker.send_delivery("d2", countdown=4.5)
    broker.revoke("j1")
    celery = app.extensions["celery"]
    assert celery.sent == [
        ("comfyq.deliver_webhook", {"args": ["d1"], "queue": "webhooks", "countdown": None, "ignore_result": True,
                                    "argsrepr": "delivery d1"}),
        ("comfyq.deliver_webhook", {"args": ["d2"], "queue": "webhooks", "countdown": 4.5, "ignore_result": True,
                                    "argsrepr": "delivery d2"})]
    assert celery.revoked == ["j1"]


def test_kombu_key_names_follow_the_transport_options() -> None:
    assert (broker.unacked_key({}), broker.unacked_index_key({})) == ("unacked", "unacked_index")
    options = {"global_keyprefix": "p:", "unacked_key": "u", "unacked_index_key": "ui", "visibility_timeout": 8}
    assert (broker.unacked_key(options), broker.unacked_index_key(options)) == ("p:u", "p:ui")
    held = broker.HeldMessages(None, options)  # type: ignore[arg-type]
    assert (held.index_key, held.visibility) == ("p:ui", 8.0)


def test_message_ids_skip_what_cannot_be_read() -> None:
    waiting = [json.dumps({"headers": {"id": "a"}}).encode(), b"not json", json.dumps({"body": 1}).encode()]
    held = [json.dumps([{"headers": {"id": "b"}}, "", "comfy"]).encode(), json.dumps([]).encode()]
    assert list(broker._message_ids(waiting)) == ["a"]
    assert list(broker._message_ids(held, nested=True)) == ["b"]


def test_delivery_tag_of_a_request() -> None:
    assert broker.delivery_tag(SimpleNamespace(delivery_info={"delivery_tag": "t1"}, message=None)) == "t1"
    assert broker.delivery_tag(SimpleNamespace(delivery_info=None, message=SimpleNamespace(delivery_tag=7))) == "7"
    assert broker.delivery_tag(SimpleNamespace(delivery_info={}, message=None)) is None
