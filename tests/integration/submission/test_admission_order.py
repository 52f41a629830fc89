"""Workers receive jobs in the order they were admitted, whichever process admitted them (real workers)."""
from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from comfyq.db.extensions import db
from comfyq.jobs import broker
from comfyq.db.models import User
from tests.conftest import txt2img
from tests.integration.conftest import new_user, submit, wait_for

QUICK = {"3": {"step_seconds": 0.05}}


def test_one_instance_starts_its_jobs_in_admission_order(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    # Admissions come from this process (submissions, up to 4 in at once) and from both workers' job ends
    # (the stack's cap of 2): three processes send, one instance's queue receives.
    monkeypatch.setitem(app.config, "MAX_ADMITTED", 4)
    # This process publishes slowly, at random (a loaded API process): a send after the commit would let a
    # later decision's send overtake it; sends under the admission row cannot be overtaken.
    jitter = random.Random(15)
    publish = broker.enqueue

    def slow_enqueue(job: Any) -> Any:
        time.sleep(jitter.uniform(0, 0.05))
        return publish(job)
    monkeypatch.setattr(broker, "enqueue", slow_enqueue)
    flood = new_user(app, "order-flood")
    flooded = [submit(flood, txt2img(seed=800 + i, sim=QUICK)) for i in range(10)]
    pupils = [new_user(app, f"order-{n}") for n in range(8)]
    pinned: list[dict] = [{} for _ in pupils]

    def send(n: int) -> None:
        pinned[n] = submit(pupils[n], txt2img(seed=900 + n, sim=QUICK), instance="gpu0")

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(pupils))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = [wait_for(pupil, job["id"], timeout=60) for pupil, job in zip(pupils, pinned)]
    for job in flooded:
        wait_for(flood, job["id"], timeout=60)
    assert {j["status"] for j in done} == {"succeeded"} and {j["instance"] for j in done} == {"gpu0"}
    with app.app_context():
        served = dict(db.session.execute(select(User.name, User.last_served).where(
            User.name.in_([f"order-{n}" for n in range(8)]))).all())
    by_pupil = {f"order-{n}": job for n, job in enumerate(done)}
    admitted = sorted(by_pupil, key=lambda name: served[name])
    started = sorted(by_pupil, key=lambda name: datetime.fromisoformat(by_pupil[name]["started_at"])
                     .astimezone(timezone.utc))
    assert started == admitted
