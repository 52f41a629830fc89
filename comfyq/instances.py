"""Instance status: what workers report about their ComfyUI, and queue depths."""
from __future__ import annotations

import time
from typing import Any

import redis
from .config import SHARED_QUEUE, Instance

STATUS_KEY = "comfyq:instance:{}"
STATUS_TTL = 20  # seconds; a worker refreshes every few seconds, so a missing key means no live worker
RUNNING_KEY = "comfyq:instance:{}:job"
RUNNING_TTL = 24 * 3600  # a worker clears it when its task ends; the TTL only bounds a crash


def set_running(r: redis.Redis, instance: str, job_id: str | None) -> None:
    """Record which job a worker's instance is busy with (None: idle)."""
    if job_id is None:
        r.delete(RUNNING_KEY.format(instance))
    else:
        r.set(RUNNING_KEY.format(instance), job_id, ex=RUNNING_TTL)


def report(r: redis.Redis, instance: str, reachable: bool, error: str | None = None,
           version: str | None = None) -> None:
    """Record what a worker just learned about its instance."""
    key = STATUS_KEY.format(instance)
    r.hset(key, mapping={"reachable": int(reachable), "checked_at": time.time(),
                         "error": error or "", "version": version or ""})
    r.expire(key, STATUS_TTL)


def describe(r: redis.Redis, instances: dict[str, Instance]) -> dict[str, Any]:
    """Return every instance's health, queue depth and running job, plus the shared queue."""
    pipe = r.pipeline(transaction=False)
    for inst in instances.values():
        pipe.hgetall(STATUS_KEY.format(inst.name))
        pipe.llen(inst.queue)
        pipe.get(RUNNING_KEY.format(inst.name))
    pipe.llen(SHARED_QUEUE)
    answers = pipe.execute()
    rows = []
    for i, inst in enumerate(instances.values()):
        status, depth, running = answers[3 * i: 3 * i + 3]
        rows.append({
            "name": inst.name,
            "worker_online": bool(status),
            "reachable": status.get(b"reachable") == b"1",
            "checked_at": float(status[b"checked_at"]) if status else None,
            "error": (status.get(b"error") or b"").decode() or (None if status else "no worker is reporting"),
            "queue": inst.queue,
            "queue_depth": int(depth),
            # What the worker is busy with, even a job already cancelled whose prompt is being stopped.
            "running_job": running.decode() if running else None,
        })
    return {"instances": rows, "shared_queue": {"name": SHARED_QUEUE, "depth": int(answers[-1])}}
