"""Instance status in Redis: what workers learn about their ComfyUI, stuck marks, and queue depths."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import redis

from ..config.settings import SHARED_QUEUE, Instance
from .lease import PRESENCE_KEY

STATUS_KEY = "comfyq:instance:{}"
STATUS_TTL = 10  # seconds; a worker refreshes every second or so, so a missing key means no live worker
RUNNING_KEY = "comfyq:instance:{}:job"
RUNNING_TTL = 24 * 3600  # a worker clears it when its task ends; the TTL only bounds a crash
STUCK_KEY = "comfyq:instance:{}:stuck"
HELD_KEY = "comfyq:instance:{}:held"  # an operator closed the intake (the value says who); no TTL: until reopened

HEALTHY, UNHEALTHY, STUCK, RESTARTING = "healthy", "unhealthy", "stuck", "restarting"


def set_running(r: redis.Redis, instance: str, job_id: str | None) -> None:
    """Record which job a worker's instance is busy with (None: idle)."""
    if job_id is None:
        r.delete(RUNNING_KEY.format(instance))
    else:
        r.set(RUNNING_KEY.format(instance), job_id, ex=RUNNING_TTL)


def running_job(r: redis.Redis, instance: str) -> str | None:
    """Return the job a worker's instance is busy with, if any."""
    found = r.get(RUNNING_KEY.format(instance))
    return found.decode() if found else None


def hold_intake(r: redis.Redis, instance: str, by: str | None) -> None:
    """Keep an instance's intake closed on an operator's word (``by`` names them), or (None) let health decide."""
    if by is None:
        r.delete(HELD_KEY.format(instance))
    else:
        r.set(HELD_KEY.format(instance), by)


def intake_held(r: redis.Redis, instance: str) -> str | None:
    """Return who closed an instance's intake by hand, if anyone did."""
    found = r.get(HELD_KEY.format(instance))
    return found.decode() if found else None


def mark_stuck(r: redis.Redis, instance: str, prompt_id: str, waited: float = 0.0) -> None:
    """Record that ``prompt_id`` may keep running on ``instance`` after its interrupt (``waited`` s ago)."""
    r.set(STUCK_KEY.format(instance), f"{prompt_id} {time.time() - waited}")


def stuck(r: redis.Redis, instance: str) -> tuple[str, float] | None:
    """Return the prompt an instance is stuck on and since when its interrupt was sent, if any."""
    found = r.get(STUCK_KEY.format(instance))
    if not found:
        return None
    prompt, _, since = found.decode().partition(" ")
    return prompt, float(since or 0)


def stuck_prompt(r: redis.Redis, instance: str) -> str | None:
    """Return the prompt an instance is stuck on, if any."""
    found = stuck(r, instance)
    return found[0] if found else None


def clear_stuck(r: redis.Redis, instance: str) -> None:
    """Forget that an instance was stuck."""
    r.delete(STUCK_KEY.format(instance))


def report(r: redis.Redis, instance: str, fields: dict[str, Any]) -> None:
    """Record what a worker just learned about its instance (``state`` and the measures behind it)."""
    key = STATUS_KEY.format(instance)
    values = {name: ("" if value is None else value) for name, value in fields.items()}
    values["checked_at"] = time.time()
    for name in ("reachable", "websocket"):
        if name in values:
            values[name] = int(bool(values[name]))
    r.hset(key, mapping=values)
    r.expire(key, STATUS_TTL)


def _number(raw: bytes | None) -> float | None:
    """Decode a stored number ('' for unknown)."""
    return float(raw) if raw else None


def _moment(raw: bytes | None) -> datetime | None:
    """Decode a stored Unix time as an aware UTC datetime ('' for unknown)."""
    return datetime.fromtimestamp(float(raw), timezone.utc) if raw else None


def _row(inst: Instance, status: dict[bytes, bytes], depth: int, running: bytes | None, alive: bool,
         stuck: bytes | None) -> dict[str, Any]:
    """Return one instance's row of the status listing."""
    def text(name: str) -> str | None:
        return (status.get(name.encode()) or b"").decode() or None

    online = bool(status) and alive
    vram = _number(status.get(b"vram_free"))
    pending = _number(status.get(b"comfyui_queue"))
    return {
        "name": inst.name,
        "worker_online": online,
        "state": text("state") if online else "unknown",
        "reachable": status.get(b"reachable") == b"1",
        "websocket": status.get(b"websocket") == b"1",
        "intake": text("intake"),
        "checked_at": _moment(status.get(b"checked_at")),
        "last_seen": _moment(status.get(b"last_seen")),
        "vram_free": int(vram) if vram is not None else None,
        "comfyui_queue": int(pending) if pending is not None else None,
        "version": text("version"),
        "error": text("error") or (None if online else "no worker is reporting"),
        "stuck_job": stuck.decode().partition(" ")[0] if stuck else None,
        "queue": inst.queue,
        "queue_depth": int(depth),
        # What the worker is busy with, even a job already cancelled whose prompt is being stopped.
        "running_job": running.decode() if running else None,
    }


def describe(r: redis.Redis, instances: dict[str, Instance]) -> dict[str, Any]:
    """Return every instance's health, queue depth and running job, plus the shared queue."""
    pipe = r.pipeline(transaction=False)
    for inst in instances.values():
        pipe.hgetall(STATUS_KEY.format(inst.name))
        pipe.llen(inst.queue)
        pipe.get(RUNNING_KEY.format(inst.name))
        pipe.get(STUCK_KEY.format(inst.name))
        pipe.exists(PRESENCE_KEY.format(inst.name))
    pipe.llen(SHARED_QUEUE)
    answers = pipe.execute()
    rows = []
    for i, inst in enumerate(instances.values()):
        status, depth, running, stuck, alive = answers[5 * i: 5 * i + 5]
        rows.append(_row(inst, status, depth, running, bool(alive), stuck))
    return {"instances": rows, "shared_queue": {"name": SHARED_QUEUE, "depth": int(answers[-1])}}
