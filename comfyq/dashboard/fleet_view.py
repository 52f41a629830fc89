"""The dashboard's fleet figures: each instance's health and work, and every comfyq queue's depth."""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import func, select

from ..accounts.users import visible_to
from ..config.settings import CONTROL_QUEUE, SHARED_QUEUE, WEBHOOK_QUEUE, Instance
from ..db.extensions import db, get_redis
from ..db.models import Job, User
from ..db.timestamps import isoformat, utcnow
from ..fleet.instances import HELD_KEY, describe
from ..jobs import broker

HOUR = timedelta(hours=1)


def queue_names(instances: Iterable[Instance]) -> list[str]:
    """Return every queue comfyq uses, whether or not anyone consumes it now."""
    names = [SHARED_QUEUE]
    for inst in instances:
        names += [q for q in inst.queues() if q not in names]
    declared = [q for q in broker.queue_names() if q not in names and q not in (CONTROL_QUEUE, WEBHOOK_QUEUE)]
    return names + sorted(declared) + [CONTROL_QUEUE, WEBHOOK_QUEUE]


def queue_depths(instances: Iterable[Instance]) -> list[dict[str, Any]]:
    """Return each queue's messages waiting in the broker, read in one round trip."""
    names = queue_names(instances)
    pipe = broker.connect().pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
    return [{"name": name, "depth": int(depth)} for name, depth in zip(names, pipe.execute())]


def _hour_counts(user: User) -> dict[tuple[str, str], int]:
    """Return (instance, status) → jobs of the last hour that ended so, among those ``user`` may see."""
    rows = db.session.execute(
        select(Job.instance, Job.status, func.count()).where(
            Job.finished_at >= utcnow() - HOUR, Job.instance.is_not(None), Job.status.in_(("succeeded", "failed")),
            visible_to(user, Job.user_id)).group_by(Job.instance, Job.status))
    return {(instance, status): number for instance, status, number in rows}


def _last_errors(user: User, names: list[str]) -> dict[str, dict[str, Any]]:
    """Return each instance's latest failed job (visible to ``user``): its id, message and when."""
    found = {}
    for name in names:
        job = db.session.scalar(select(Job).where(
            Job.instance == name, Job.status.in_(("failed", "timed_out")), visible_to(user, Job.user_id))
            .order_by(Job.finished_at.desc()).limit(1))
        if job is not None:
            found[name] = {"job_id": job.id, "message": (job.error or {}).get("message") or job.status,
                           "at": isoformat(job.finished_at) if job.finished_at else None}
    return found


def _running(user: User, job_ids: list[str]) -> dict[str, Job]:
    """Return the running jobs among ``job_ids`` that ``user`` may see."""
    if not job_ids:
        return {}
    return {job.id: job for job in db.session.scalars(
        select(Job).where(Job.id.in_(job_ids), visible_to(user, Job.user_id)))}


def running_of(job: Job | None, busy: bool) -> dict[str, Any] | None:
    """Return what the dashboard shows of an instance's running job (only that it is busy, if not visible)."""
    if job is None:
        return {"hidden": True} if busy else None
    progress = job.progress or {}
    return {"job_id": job.id, "status": job.status, "node": progress.get("label") or progress.get("node_type"),
            "node_id": progress.get("node"), "fraction": float(progress.get("fraction") or 0.0),
            "value": progress.get("value"), "max": progress.get("max"),
            "started_at": isoformat(job.started_at) if job.started_at else None}


def instances_of(user: User) -> list[dict[str, Any]]:
    """Return each instance: health, intake, VRAM, its running job with progress, last hour's ends, last error."""
    configured: dict[str, Instance] = current_app.config["INSTANCES"]
    rows = describe(get_redis(), configured)["instances"]
    jobs = _running(user, [row["running_job"] for row in rows if row["running_job"]])
    counts, errors = _hour_counts(user), _last_errors(user, list(configured))
    held = dict(zip(configured, get_redis().mget([HELD_KEY.format(name) for name in configured]))) \
        if configured else {}
    shown = []
    for row in rows:
        name = row["name"]
        shown.append({
            "name": name, "url": configured[name].url, "state": row["state"], "worker_online": row["worker_online"],
            "reachable": row["reachable"], "intake": row["intake"], "vram_free": row["vram_free"],
            "intake_held_by": held[name].decode() if held.get(name) else None,
            "queue": row["queue"], "queue_depth": row["queue_depth"], "error": row["error"],
            "running": running_of(jobs.get(row["running_job"] or ""), bool(row["running_job"])),
            "done_last_hour": counts.get((name, "succeeded"), 0),
            "failed_last_hour": counts.get((name, "failed"), 0),
            "last_error": errors.get(name),
        })
    return shown
