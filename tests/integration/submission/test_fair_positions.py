"""Honest queue positions: what a waiting job reports is how many jobs start before it (real workers, cap 2)."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import txt2img
from tests.integration.conftest import TERMINAL, new_user, submit, wait_for

STEADY = {"3": {"step_seconds": 0.15}}  # four steps: about 0.6 s a job, so snapshots see several positions


def moment(stamp: str) -> datetime:
    """Parse an API timestamp."""
    return datetime.fromisoformat(stamp).astimezone(timezone.utc)


def snapshot(jobs: list[tuple[FlaskClient, str]]) -> list[tuple[str, str, int, datetime, str | None]]:
    """Read every waiting job once: (id, status, reported position, when the read began, estimated start)."""
    seen = []
    for client, job_id in jobs:
        asked = datetime.now(timezone.utc)
        job = client.get(f"/v1/jobs/{job_id}").get_json()
        if job["status"] in ("pending", "queued"):
            seen.append((job_id, job["status"], job["queue_position"], asked, job["estimated_start"]))
    return seen


def test_every_waiting_job_reports_how_many_start_before_it(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    # Submissions here admit up to 4 (a lookahead of one per GPU, the default), so some jobs wait queued;
    # the workers' own ends keep the stack's cap of 2 and admit once fewer than 2 are in.
    monkeypatch.setitem(app.config, "MAX_ADMITTED", 4)
    hog = new_user(app, "pos-hog")
    backlog = [submit(hog, txt2img(seed=500 + i, sim=STEADY)) for i in range(6)]
    wait_for(hog, backlog[0]["id"], {"running", "succeeded"}, timeout=30)
    kids = [new_user(app, f"pos-kid-{n}") for n in range(5)]
    singles = [(kid, submit(kid, txt2img(seed=600 + n, sim=STEADY))) for n, kid in enumerate(kids)]
    teacher = new_user(app, "pos-teacher")  # equal weights: positions are exact (with weights, an estimate)
    demos = [submit(teacher, txt2img(seed=700 + i, sim=STEADY)) for i in range(2)]
    # An estimate tells the position a submission would get: the same, but for jobs that start in between.
    asked_from = datetime.now(timezone.utc)
    forecast = teacher.post("/v1/jobs:estimate", json={"workflow": txt2img(seed=702, sim=STEADY)})
    assert forecast.status_code == 200, forecast.get_json()
    demos.append(submit(teacher, txt2img(seed=702, sim=STEADY)))
    asked_until = datetime.now(timezone.utc)
    everyone = [(hog, j["id"]) for j in backlog] + [(k, j["id"]) for k, j in singles] + [(teacher, j["id"])
                                                                                         for j in demos]
    snapshots: list[list[tuple[str, str, int, datetime, str | None]]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        seen = snapshot(everyone)
        if not seen:
            break
        snapshots.append(seen)
        time.sleep(0.3)
    ended = {job_id: wait_for(client, job_id, TERMINAL, timeout=60) for client, job_id in everyone}
    assert all(j["status"] == "succeeded" for j in ended.values())
    started = {job_id: moment(j["started_at"]) for job_id, j in ended.items()}
    checked, statuses, misses, errors = 0, set(), [], []
    for seen in snapshots:
        for job_id, status, reported, asked, estimate in seen:
            actual = sum(1 for other, at in started.items() if other != job_id and asked < at < started[job_id])
            checked += 1
            statuses.add(status)
            if abs(reported - actual) > 1:
                misses.append((job_id[:8], status, reported, actual))
            if estimate is not None:
                errors.append(abs((moment(estimate) - started[job_id]).total_seconds()))
    assert checked >= 20 and statuses == {"pending", "queued"}, (checked, statuses)
    between = sum(1 for at in started.values() if asked_from <= at <= asked_until)
    assert abs(forecast.get_json()["queue_position"] - demos[-1]["queue_position"]) <= between, (
        forecast.get_json()["queue_position"], demos[-1]["queue_position"], between)
    assert demos[-1]["status"] == "pending" and demos[-1]["queue_position"] >= 5  # behind its 2 older ones and the kids
    assert not misses, misses
    # Start estimates, once earlier jobs have succeeded (seen here: all within 0.04 s), loosely bounded.
    errors.sort()
    assert len(errors) >= 10, len(errors)
    assert errors[len(errors) // 2] <= 1.0 and errors[-1] <= 6.0, errors
