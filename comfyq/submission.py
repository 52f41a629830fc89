"""Accept a workflow: validate it, write the job, commit, then enqueue its id."""
from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from sqlalchemy import delete

from . import catalogue
from .config import SHARED_QUEUE, Instance
from .errors import InvalidRequest, Unavailable
from .extensions import db, get_redis
from .jobs import JobStatus
from .models import Job
from .validation import validate_workflow

logger = logging.getLogger(__name__)
TASK_NAME = "comfyq.run_job"


def _target(instance: str | None) -> tuple[str, list[Instance]]:
    """Return the queue a job goes to and the instances that may run it."""
    instances: dict[str, Instance] = current_app.config["INSTANCES"]
    if instance is None:
        return SHARED_QUEUE, list(instances.values())
    if instance not in instances:
        known = ", ".join(sorted(instances)) or "none configured"
        raise InvalidRequest(f"unknown instance {instance!r}; known instances: {known}",
                             {"json": {"instance": [f"not one of: {known}"]}})
    return instances[instance].queue, [instances[instance]]


def _catalogues(instances: list[Instance]) -> dict[str, catalogue.Catalogue]:
    """Return the published catalogues of ``instances`` (those known so far)."""
    r, ttl = get_redis(), current_app.config["CATALOGUE_TTL"]
    try:
        found = {inst.name: catalogue.load(r, inst.name, ttl) for inst in instances}
    except RedisError as exc:
        raise Unavailable(f"Redis is unreachable ({exc}); nothing was queued, try again") from exc
    return {name: cat for name, cat in found.items() if cat is not None}


def submit_job(workflow: dict[str, Any], instance: str | None = None) -> Job:
    """Validate, store and enqueue a job; return it."""
    queue, instances = _target(instance)
    max_nodes = current_app.config["MAX_WORKFLOW_NODES"]
    # Structure first, so a malformed graph gets its 422 even when Redis is down.
    validate_workflow(workflow, {}, max_nodes)
    catalogues = _catalogues(instances)
    if catalogues:
        validate_workflow(workflow, catalogues, max_nodes)
    job = Job(status=JobStatus.QUEUED.value, queue=queue, instance_requested=instance, workflow=workflow,
              outputs=[])
    db.session.add(job)
    db.session.commit()
    try:
        current_app.extensions["celery"].send_task(
            TASK_NAME, args=[job.id], task_id=job.id, queue=queue,
            soft_time_limit=current_app.config["SOFT_TIME_LIMIT"],
            time_limit=current_app.config["HARD_TIME_LIMIT"])
    except (BrokerError, RedisError, OSError) as exc:
        # Never leave a queued row without a broker message behind it.
        logger.error("enqueue of %s failed: %s", job.id, exc)
        db.session.execute(delete(Job).where(Job.id == job.id))
        db.session.commit()
        raise Unavailable("the queue (Redis) is unreachable; nothing was queued, try again") from exc
    return job
