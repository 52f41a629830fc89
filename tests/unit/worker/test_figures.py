"""comfyq's figures in a worker's stats: the instance's health and job, the caps and how much of them is used."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from celery.worker import state as worker_state
from flask import Flask

from comfyq import create_app
from comfyq.db.extensions import db
from comfyq.db.models import Job
from comfyq.worker import figures
from comfyq.worker.figures import FiguresStep
from comfyq.worker.intake import IntakeStep
from tests.conftest import txt2img


class Running:
    """A task request as the worker's state holds it: only its id matters here."""

    def __init__(self, id_: str) -> None:
        self.id = id_


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    flask_app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.db", "OUTPUT_DIR": str(tmp_path),
                            "MAX_ADMITTED": 4, "MAX_RUNNING_PER_USER": 2})
    with flask_app.app_context():
        for status in ("pending", "pending", "pending", "queued", "running", "succeeded"):
            db.session.add(Job(status=status, queue="comfy", workflow=txt2img(), soft_time_limit=60.0))
        db.session.commit()
    monkeypatch.setattr(FiguresStep, "counted", (0.0, {}))
    monkeypatch.setattr(IntakeStep, "status", {})
    monkeypatch.setattr(worker_state, "active_requests", set())
    yield flask_app
    FiguresStep.configure(None, None)  # type: ignore[arg-type]


def test_a_gpu_workers_stats_show_its_instance_job_and_the_caps(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    FiguresStep.configure(app, "gpu0")
    shown = FiguresStep(None).info(None)["comfyq"]  # type: ignore[arg-type]
    assert shown == {"instance": "gpu0", "intake": "unknown", "running_job": None, "global_cap": 4,
                     "global_used": 2, "per_user_cap": 2, "pending": 3}
    monkeypatch.setattr(IntakeStep, "status", {"state": "healthy", "intake": "open", "instance": "gpu0"})
    worker_state.active_requests.add(Running("job-1"))
    shown = FiguresStep(None).info(None)["comfyq"]  # type: ignore[arg-type]
    assert (shown["state"], shown["intake"], shown["running_job"]) == ("healthy", "open", "job-1")


def test_other_workers_show_the_caps_alone_and_counts_are_reused_for_a_moment(app: Flask) -> None:
    FiguresStep.configure(app)
    first = FiguresStep(None).info(None)["comfyq"]  # type: ignore[arg-type]
    assert first == {"instance": None, "global_cap": 4, "global_used": 2, "per_user_cap": 2, "pending": 3}
    with app.app_context():
        db.session.add(Job(status="pending", queue="comfy", workflow=txt2img(), soft_time_limit=60.0))
        db.session.commit()
    assert FiguresStep(None).info(None)["comfyq"]["pending"] == 3  # within FRESH_FOR of the last count
    FiguresStep.counted = (FiguresStep.counted[0] - figures.FRESH_FOR, FiguresStep.counted[1])
    assert FiguresStep(None).info(None)["comfyq"]["pending"] == 4


def test_a_database_that_fails_leaves_the_stats_answering(app: Flask, tmp_path: Path) -> None:
    broken = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.db", "OUTPUT_DIR": str(tmp_path)})
    with broken.app_context():
        db.drop_all()
    FiguresStep.configure(broken)
    shown = FiguresStep(None).info(None)["comfyq"]  # type: ignore[arg-type]
    assert shown["instance"] is None and "figures_error" in shown and "global_cap" not in shown
