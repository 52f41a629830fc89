"""One snapshot of everything the dashboard shows, as the operator may see it."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import current_app
from redis.exceptions import RedisError

from ..db.models import User
from ..db.timestamps import isoformat, utcnow
from ..errors import Unavailable
from .activity import credits_today, failing_webhooks, pending_of, recent_jobs
from .fleet_view import instances_of, queue_depths


def output_url(job_id: str, name: str) -> str:
    """Return the dashboard's own (cookie-authenticated) URL of a job's output."""
    return f"/dashboard/outputs/{quote(job_id, safe='')}/{quote(name, safe='')}"


def snapshot(user: User) -> dict[str, Any]:
    """Return the dashboard's figures for ``user``: teachers see their students' work, admins everything."""
    try:
        instances = instances_of(user)
        queues = queue_depths(current_app.config["INSTANCES"].values())
    except RedisError as exc:
        raise Unavailable(f"Redis is unreachable: {exc}") from exc
    return {
        "operator": {"name": user.name, "role": user.role, "acts_on_fleet": user.role == "admin"},
        "instances": instances,
        "queues": queues,
        "pending": pending_of(user),
        "jobs": recent_jobs(user, output_url),
        "webhooks_failing": failing_webhooks(user),
        "credits_today": credits_today(user),
        "at": isoformat(utcnow()),
    }
