"""Gauges read when scraped: live jobs by state, the busiest users, instances, broker queue depths."""
from __future__ import annotations

from typing import Any, Mapping

import redis
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from ..db.extensions import db
from ..db.models import Job, User
from ..fleet.instances import HEALTHY, describe
from .catalogue import INSTANCE_INTAKE, INSTANCE_UP, INSTANCE_VRAM, JOBS, QUEUE_DEPTH, USER_RUNNING, Metric

LIVE_STATES = ("pending", "queued", "running")  # ended jobs are counted by comfyq_jobs_ended_total


def gauge(metric: Metric, samples: Mapping[tuple[str, ...], float]) -> GaugeMetricFamily:
    """Build a gauge's family from label values → value."""
    family = GaugeMetricFamily(metric.name, metric.help, labels=metric.labels)
    for values, value in samples.items():
        family.add_metric(list(values), value)
    return family


def jobs_by_state() -> GaugeMetricFamily:
    """Count the jobs in each live state (zero included)."""
    rows = db.session.execute(select(Job.status, func.count()).where(Job.status.in_(LIVE_STATES))
                              .group_by(Job.status)).all()
    found = dict(rows)
    return gauge(JOBS, {(state,): found.get(state, 0) for state in LIVE_STATES})


def running_per_user(top: int) -> GaugeMetricFamily:
    """Count the running jobs of the ``top`` users running the most (ties by name)."""
    running = func.count().label("running")
    rows = db.session.execute(select(User.name, running).join(Job, Job.user_id == User.id)
                              .where(Job.status == "running").group_by(User.name)
                              .order_by(running.desc(), User.name).limit(top)).all() if top > 0 else []
    return gauge(USER_RUNNING, {(name,): count for name, count in rows})


def instance_families(r: redis.Redis, instances: Mapping[str, Any]) -> list[GaugeMetricFamily]:
    """Tell each instance's health, intake and free VRAM as its worker last reported them."""
    rows = describe(r, dict(instances))["instances"]
    up = {(row["name"],): float(row["worker_online"] and row["state"] == HEALTHY) for row in rows}
    intake = {(row["name"],): float(row["worker_online"] and row["intake"] == "open") for row in rows}
    vram = {(row["name"],): row["vram_free"] for row in rows if row["vram_free"] is not None}
    return [gauge(INSTANCE_UP, up), gauge(INSTANCE_INTAKE, intake), gauge(INSTANCE_VRAM, vram)]


def queue_depths(depths: Mapping[str, int]) -> GaugeMetricFamily:
    """Tell how many messages wait in each broker queue."""
    return gauge(QUEUE_DEPTH, {(queue,): depth for queue, depth in depths.items()})
