"""The recovery policy: one counter (the row's attempts), and what each trouble leads to, on a real SQLite file."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
from billiard.exceptions import WorkerLostError
from celery.exceptions import TimeLimitExceeded
from flask import Flask

from comfyq import create_app
from comfyq.config.settings import parse_instances
from comfyq.db.extensions import db
from comfyq.db.models import Job, utcnow
from comfyq.jobs import recovery
from comfyq.jobs.machine import JobStatus, transition
from tests.conftest import txt2img
from tests.unit.jobs.fakes import FakeCelery


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    flask_app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.db", "OUTPUT_DIR": str(tmp_path),
                            "REDIS_URL": "redis://127.0.0.1:1/0", "MAX_ATTEMPTS": 3, "SOFT_TIME_LIMIT": 60.0,
                            "TIME_LIMIT_GRACE": 30.0,
                            "INSTANCES": parse_instances("gpu0=http://127.0.0.1:1,gpu1=http://127.0.0.1:2")})
    flask_app.extensions["celery"] = FakeCelery()
    stopped: list[tuple[str, str]] = []
    monkeypatch.setattr(recovery, "stop_prompt_on", lambda instance, job_id: stopped.append((instance.name, job_id)))
    flask_app.extensions["stopped"] = stopped
    with flask_app.app_context():
        yield flask_app


def gpu(app: Flask, name: str = "gpu0") -> Any:
    return app.config["INSTANCES"][name]


def sent(app: Flask) -> list[tuple[str, float | None]]:
    """Return the (queue, countdown) of every run_job message sent."""
    return [(o["queue"], o["countdown"]) for name, o in app.extensions["celery"].sent if name == "comfyq.run_job"]


def running(queue: str = "comfy", instance: str = "gpu0", attempts: int = 1, started_ago: float = 1.0) -> Job:
    """Store a job claimed by a run on ``instance`` ``attempts`` times; return it."""
    job = Job(status="running", queue=queue, workflow=txt2img(), soft_time_limit=60.0, instance=instance,
              attempts=attempts, started_at=utcnow() - timedelta(seconds=started_ago))
    db.session.add(job)
    db.session.commit()
    return job


def status_of(job_id: str) -> Job:
    return db.session.get(Job, job_id, populate_existing=True)


def test_an_instance_that_never_took_the_prompt_requeues_until_the_attempts_are_spent(app: Flask) -> None:
    job = running(attempts=1)
    for attempt in (1, 2):
        assert recovery.unreachable(job, gpu(app), "instance gpu0: refused", submitted=False, down=False) \
            == "requeued"
        seen = status_of(job.id)
        assert (seen.status, seen.error["type"]) == ("queued", "instance_unavailable")
        assert transition(job.id, JobStatus.RUNNING, [JobStatus.QUEUED], attempts=Job.attempts + 1)  # the next run
    assert recovery.unreachable(job, gpu(app), "instance gpu0: refused", submitted=False, down=False) == "failed"
    seen = status_of(job.id)
    assert seen.status == "failed" and seen.attempts == 3
    assert seen.error == {"type": "instance_unavailable",
                          "message": "no instance could run the job in 3 attempts: instance gpu0: refused"}
    assert sent(app) == [("comfy", 0.0), ("comfy", 0.0)]  # any capable instance, at once


def test_a_pinned_job_goes_back_to_its_instance_with_a_backoff_by_attempts(app: Flask) -> None:
    job = running(queue="comfy.gpu0", attempts=2)
    assert recovery.unreachable(job, gpu(app), "instance gpu0: refused", submitted=False, down=False) == "requeued"
    assert sent(app) == [("comfy.gpu0", 4.0)]


def test_an_instance_that_went_down_with_the_prompt_requeues_then_gives_up(app: Flask) -> None:
    job = running(attempts=1)
    assert recovery.unreachable(job, gpu(app), "instance gpu0: gone", submitted=True, down=True,
                                progress={"percent": 40}, worker="gpu0@h") == "requeued"
    seen = status_of(job.id)
    assert seen.status == "queued" and seen.error == {
        "type": "instance_lost",
        "message": "instance gpu0: gone; the instance went down while running the job (attempt 1 of 3)"}
    last = running(attempts=3)
    assert recovery.unreachable(last, gpu(app), "instance gpu0: gone", submitted=True, down=True,
                                progress={"percent": 40}, worker="gpu0@h") == "failed"
    seen = status_of(last.id)
    assert seen.error["message"].endswith("(attempt 3 of 3), giving up") and seen.progress == {"percent": 40}
    assert sent(app) == [("comfy", 0.0)]


def test_an_instance_that_still_answers_is_reattached_to_until_the_hard_limit(app: Flask) -> None:
    job = running(queue="comfy", instance="gpu1", attempts=1)
    assert recovery.unreachable(job, gpu(app, "gpu1"), "instance gpu1: timeout", submitted=True, down=False,
                                limits=(60.0, 90.0)) == "reattaching"
    assert status_of(job.id).status == "running" and status_of(job.id).attempts == 1  # no attempt used
    assert sent(app) == [("comfy.gpu1", recovery.AGAIN_AFTER)]
    late = running(instance="gpu1", started_ago=91.0)
    assert recovery.unreachable(late, gpu(app, "gpu1"), "instance gpu1: timeout", submitted=True,
                                down=False) == "timed_out"
    assert "ran past its hard limit (90 s)" in status_of(late.id).error["message"]
    assert app.extensions["stopped"] == [("gpu1", late.id)] and len(sent(app)) == 1


def test_an_unfit_instance_sends_shared_work_away_and_keeps_its_pinned_jobs_waiting(app: Flask) -> None:
    shared, pinned = running(), running(queue="comfy.gpu0")
    for job in (shared, pinned):
        db.session.get(Job, job.id).status = "queued"
    db.session.commit()
    assert recovery.refused(shared, gpu(app), "instance gpu0 is stuck") == "requeued"
    assert recovery.refused(pinned, gpu(app), "instance gpu0 is unhealthy") == "waiting"
    assert recovery.hand_over(shared, gpu(app, "gpu1"), (60.0, 90.0)) == "handed over"
    assert sent(app) == [("comfy", 0), ("comfy.gpu0", recovery.AGAIN_AFTER), ("comfy.gpu1", 0)]
    assert {status_of(j.id).attempts for j in (shared, pinned)} == {1}  # nothing ran: no attempt used


def test_a_task_that_died_ends_its_job_once_unless_its_child_was_lost(app: Flask) -> None:
    lost, killed, broken = running(), running(), running(instance="gpu1")
    assert recovery.end_orphaned(lost.id, WorkerLostError("gone"), gpu(app)) is None
    assert status_of(lost.id).status == "running"  # its message comes back and the next run reattaches
    assert recovery.end_orphaned(killed.id, TimeLimitExceeded(90.0), gpu(app)) is JobStatus.TIMED_OUT
    assert "hard time limit" in status_of(killed.id).error["message"]
    assert recovery.end_orphaned(broken.id, RuntimeError("boom"), None) is JobStatus.FAILED
    assert status_of(broken.id).error["message"] == "the task ended without an outcome: RuntimeError('boom')"
    assert recovery.end_orphaned(broken.id, RuntimeError("again"), None) is None
    assert app.extensions["stopped"] == [("gpu0", killed.id)]


def test_an_outage_sends_the_job_again_as_it_was(app: Flask) -> None:
    on_gpu1, queued = running(instance="gpu1"), running(queue="comfy.gpu0")
    db.session.get(Job, queued.id).status = "queued"
    db.session.commit()
    assert recovery.try_again(on_gpu1.id, ConnectionError("redis"), (60.0, 90.0)) == "reattaching"
    assert recovery.try_again(queued.id, ConnectionError("redis")) == "requeued"
    transition(on_gpu1.id, JobStatus.SUCCEEDED, [JobStatus.RUNNING])
    assert recovery.try_again(on_gpu1.id, ConnectionError("redis")) == "succeeded"
    assert sent(app) == [("comfy.gpu1", recovery.AGAIN_AFTER), ("comfy.gpu0", recovery.AGAIN_AFTER)]


def test_the_soft_limit_times_out_and_says_which_instance_is_freed(app: Flask) -> None:
    plain, stuck = running(), running()
    assert recovery.past_soft_limit(plain.id, worker="gpu0@h") == "timed_out"
    assert recovery.past_soft_limit(stuck.id, "gpu0") == "timed_out"
    assert status_of(plain.id).error == {"type": "timed_out", "message": "the job ran past its time limit"}
    assert status_of(stuck.id).error["message"].endswith("so instance gpu0 is being freed")
    assert recovery.past_soft_limit(plain.id) == "superseded"


def test_the_reconciler_ends_an_abandoned_job_and_resends_a_lost_one(app: Flask,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    young, old, owned = running(instance=None), running(instance=None, started_ago=91.0), running(started_ago=91.0)
    monkeypatch.setattr(recovery.lease, "is_alive", lambda r, name: name == "gpu0")
    monkeypatch.setattr(recovery.instances, "running_job", lambda r, name: owned.id)
    assert [recovery.abandoned(job) for job in (young, old, owned)] == [False, True, False]
    assert "no live worker" in status_of(old.id).error["message"]
    recovery.message_lost(young)
    assert sent(app) == [("comfy", None)]
