"""The job state machine's guarded transitions, on a real SQLite file."""
from __future__ import annotations

import threading

import pytest
from flask import Flask

from comfyq.db.extensions import db
from comfyq.jobs.machine import IllegalTransition, JobStatus, transition
from comfyq.db.models import Job, Output
from tests.conftest import offline_app, txt2img


@pytest.fixture
def app(tmp_path) -> Flask:
    flask_app = offline_app(f"sqlite:///{tmp_path}/t.db", tmp_path / "out")
    with flask_app.app_context():
        yield flask_app


def make_job(status: JobStatus = JobStatus.QUEUED) -> str:
    job = Job(status=status.value, queue="comfy", workflow=txt2img())
    db.session.add(job)
    db.session.commit()
    return job.id


def test_only_the_expected_state_moves(app: Flask) -> None:
    job_id = make_job()
    assert transition(job_id, JobStatus.RUNNING, [JobStatus.QUEUED], instance="gpu0")
    assert not transition(job_id, JobStatus.RUNNING, [JobStatus.QUEUED], instance="gpu1")
    job = db.session.get(Job, job_id, populate_existing=True)
    assert (job.status, job.instance) == ("running", "gpu0")
    assert job.started_at is not None and job.finished_at is None


def test_racing_claims_move_the_job_once(app: Flask) -> None:
    job_ids = [make_job() for _ in range(5)]
    barrier = threading.Barrier(6)
    wins: list[tuple[str, str]] = []

    def claim(instance: str) -> None:
        with app.app_context():  # own session, own connection
            barrier.wait()
            for job_id in job_ids:
                if transition(job_id, JobStatus.RUNNING, [JobStatus.QUEUED], instance=instance):
                    wins.append((job_id, instance))

    threads = [threading.Thread(target=claim, args=(f"gpu{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(j for j, _ in wins) == sorted(job_ids)
    for job_id, instance in wins:
        assert db.session.get(Job, job_id, populate_existing=True).instance == instance


def test_terminal_states_are_final(app: Flask) -> None:
    job_id = make_job()
    assert transition(job_id, JobStatus.CANCELLED, [JobStatus.QUEUED])
    assert db.session.get(Job, job_id, populate_existing=True).finished_at is not None
    for target in (JobStatus.RUNNING, JobStatus.FAILED):
        assert not transition(job_id, target, [JobStatus.QUEUED])


def test_edges_outside_the_machine_raise(app: Flask) -> None:
    job_id = make_job()
    with pytest.raises(IllegalTransition):
        transition(job_id, JobStatus.SUCCEEDED, [JobStatus.QUEUED])
    with pytest.raises(IllegalTransition):
        transition(job_id, JobStatus.RUNNING, [JobStatus.SUCCEEDED])


def test_failed_move_rolls_back_pending_rows(app: Flask) -> None:
    job_id = make_job()
    db.session.add(Output(job_id=job_id, name="a.png", node_id="7", kind="output",
                          content_type="image/png", size=1, sha256="0" * 64, path="x"))
    assert not transition(job_id, JobStatus.SUCCEEDED, [JobStatus.RUNNING])
    assert db.session.query(Output).count() == 0
