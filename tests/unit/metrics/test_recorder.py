"""What the recorder writes to Redis, and that counts made in a transaction wait for its commit."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask

from comfyq.db.extensions import db
from comfyq.metrics import recorder
from comfyq.metrics.catalogue import CREDITS_DEBITED, JOBS_ENDED, RUN_TIME
from comfyq.metrics.recorder import Increment, bucket_of, increments, observations
from tests.conftest import offline_app


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return offline_app(f"sqlite:///{tmp_path}/t.db", tmp_path / "out")


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Increment]]:
    """Collect what reaches Redis instead of sending it (the offline app has none)."""
    seen: list[Increment] = []
    monkeypatch.setattr(recorder, "record", lambda _r, items: seen.extend(items))
    yield seen


def test_a_counter_field_is_its_label_values_in_declared_order() -> None:
    (item,) = increments(JOBS_ENDED, 1, template="txt2img", state="failed")
    assert item == Increment("comfyq:metrics:comfyq_jobs_ended", json.dumps(["failed", "txt2img"]), 1)
    with pytest.raises(ValueError, match="takes labels"):
        increments(JOBS_ENDED, 1, state="failed")


def test_an_observation_adds_to_its_bucket_and_the_sum() -> None:
    assert bucket_of(RUN_TIME, 0.1) == "0.25" and bucket_of(RUN_TIME, 1.0) == "1.0"
    assert bucket_of(RUN_TIME, 10_000) == "+Inf"
    items = observations(RUN_TIME, 3, template="raw", instance="gpu0")
    assert [(json.loads(i.field), i.amount) for i in items] == [
        (["raw", "gpu0", "5.0"], 1), (["raw", "gpu0", "sum"], 3.0)]
    assert isinstance(items[1].amount, float)  # sums add with HINCRBYFLOAT, whatever the value


def test_counts_on_commit_wait_for_it_and_vanish_with_a_rollback_or_close(app: Flask, recorded: list[Increment]) -> None:
    with app.app_context():
        db.session.execute(db.text("SELECT 1"))
        recorder.count_on_commit(CREDITS_DEBITED, 5)
        assert recorded == []
        db.session.rollback()
        db.session.execute(db.text("SELECT 1"))
        db.session.commit()
        assert recorded == []
        recorder.count_on_commit(CREDITS_DEBITED, 7)
        db.session.commit()
        assert [item.amount for item in recorded] == [7]
        db.session.commit()
        assert len(recorded) == 1
        db.session.execute(db.text("SELECT 1"))
        recorder.count_on_commit(CREDITS_DEBITED, 9)
        db.session.close()  # as a task's or a request's end does: its transaction is gone, and its counts
        db.session.execute(db.text("SELECT 1"))
        db.session.commit()
        assert len(recorded) == 1


def test_an_unreachable_redis_loses_the_counts_and_raises_nothing(app: Flask) -> None:
    with app.app_context():
        recorder.count(CREDITS_DEBITED, 3)
        recorder.observe(RUN_TIME, 1.5, template="raw", instance="gpu0")
