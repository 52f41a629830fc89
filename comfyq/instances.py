"""Instance status: what workers report about their ComfyUI, and queue depths."""
from __future__ import annotations

import time
from typing import Any

import redis
from sqlalchemy import select

from .config import SHARED_QUEUE, Instance
from .extensions import db
from .jobs import JobStatus
from .models import Job

STATUS_KEY = "comfyq:instance:{}"
STATUS_TTL = 20  # seconds; a worker refreshes every few seconds, so a missing key means no live worker


def report(r: redis.Redis, instance: str, reachable: bool, error: str | None = None,
           version: str | None = None) -> None:
    """Record what a worker just learned about its instance."""
    key = STATUS_KEY.format(instance)
    r.hset(key, mapping={"reachable": int(reachable), "checked_at": time.time(),
                         "error": error or "", "version": version or ""})
    r.expire(key, STATUS_TTL)


def describe(r: redis.Redis, instances: dict[str, Instance]) -> dict[str, Any]:
    """Return every instance's health, queue depth and running job, plus the shared queue."""
    running = dict(db.session.execute(
        select(Job.instance, Job.id).where(Job.status == JobStatus.RUNNING.value)).all())
    pipe = r.pipeline(transaction=False)
    for inst in instances.values():
        pipe.hgetall(STATUS_KEY.format(inst.name))
        pipe.llen(inst.queue)
    pipe.llen(SHARED_QUEUE)
    answers = pipe.execute()
    rows = []
    for i, inst in enumerate(instances.values()):
        status, depth = answers[2 * i], answers[2 * i + 1]
        rows.append({
            "name": inst.name,
            "worker_online": bool(status),
            "reachable": status.get(b"reachable") == b"1",
            "checked_at": float(status[b"checked_at"]) if status else None,
            "error": (status.get(b"error") or b"").decode() or (None if status else "no worker is reporting"),
            "queue": inst.queue,
            "queue_depth": int(depth),
            "running_job": running.get(inst.name),
        })
    return {"instances": rows, "shared_queue": {"name": SHARED_QUEUE, "depth": int(answers[-1])}}
