"""Run events logged from a background thread (comfyq.events.background): in order, and all before the end."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
from flask import Flask

from comfyq.db.extensions import get_redis
from comfyq.db.models import Job
from comfyq.events import announcer, log
from comfyq.events.background import Background
from comfyq.jobs.machine import JobStatus, Moved
from tests.conftest import offline_app


def test_items_are_sent_in_the_order_queued() -> None:
    sent: list[int] = []
    calls: list[int] = []

    def send(items: list[int]) -> None:
        time.sleep(0.001)  # let items pile up, so some calls carry several
        calls.append(len(items))
        sent.extend(items)
    worker = Background(send)
    for n in range(500):
        worker.put(n)
    assert worker.flush()
    assert sent == list(range(500))
    assert len(calls) < 500  # what piles up goes in one call


def test_flush_waits_for_a_slow_send_and_a_failing_one_does_not_stop_the_thread() -> None:
    started, release, sent = threading.Event(), threading.Event(), []

    def send(items: list[str]) -> None:
        if "boom" in items:
            raise RuntimeError("boom")
        started.set()
        release.wait(5)
        sent.extend(items)
    worker = Background(send)
    worker.put("boom")
    assert worker.flush()
    worker.put("slow")
    assert started.wait(5)
    assert not worker.flush(timeout=0.2)  # still sending
    release.set()
    assert worker.flush()
    worker.put("after")
    assert worker.flush() and sent == ["slow", "after"]


@pytest.fixture
def app(tmp_path: Path, redis_url: str) -> Iterator[Flask]:
    flask_app = offline_app(f"sqlite:///{tmp_path}/t.db", tmp_path / "out", REDIS_URL=redis_url)
    with flask_app.app_context():
        yield flask_app


def test_a_runs_final_event_comes_after_all_its_progress(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    r: redis.Redis = get_redis()
    job = Job(id="background-job", status=JobStatus.RUNNING.value, queue="comfy", workflow={}, user_id=None)
    r.delete(log.job_log(job.id), log.job_log(job.id) + ":last", log.done_key(job.id))
    send = announcer._runs.send

    def slow(items: list[Any]) -> None:
        time.sleep(0.02)  # a busy Redis: without the flush, the end would be logged first
        send(items)
    monkeypatch.setattr(announcer._runs, "send", slow)
    news = announcer.RunNews(job, r)
    for n in range(20):
        news.tell({"type": "progress", "progress": {"value": n}})
    moved = Moved(job.id, None, "comfy", JobStatus.RUNNING, JobStatus.SUCCEEDED, "gpu0", 1, None, None, None)
    log_move = announcer.on_moved(moved)
    assert log_move is not None
    log_move()
    bodies = [json.loads(body) for _, body in log.read_after(r, log.job_log(job.id), log.START)]
    assert [body["type"] for body in bodies] == ["progress"] * 20 + ["succeeded"]
    assert [body["progress"]["value"] for body in bodies[:-1]] == list(range(20))
