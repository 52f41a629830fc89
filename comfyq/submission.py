"""Accept work: plan it, write the job, commit, then enqueue its id."""
from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from sqlalchemy import delete

from . import instances
from .accounts import check_submission
from .errors import Unavailable
from .extensions import db, get_redis
from .jobs import JobStatus
from .models import Job, User
from .planning import Plan, plan_job
from .queries import queued_ahead

logger = logging.getLogger(__name__)
TASK_NAME = "comfyq.run_job"
# Anything send_task raises means no message may exist: the job must not stay queued.
ENQUEUE_ERRORS = (BrokerError, RedisError, OSError, RuntimeError)


def new_job(plan: Plan, user: User, batch_id: str | None = None) -> Job:
    """Return an unsaved queued job of ``user`` for a plan."""
    return Job(user_id=user.id, status=JobStatus.QUEUED.value, queue=plan.queue, instance_requested=plan.instance,
               workflow=plan.workflow, template=plan.template, template_version=plan.template_version,
               params=plan.params, cost=plan.cost, soft_time_limit=plan.soft_time_limit, inputs=plan.inputs,
               batch_id=batch_id, outputs=[])


def enqueue(job: Job) -> None:
    """Send the job's task to its queue, with its own time limits."""
    current_app.extensions["celery"].send_task(
        TASK_NAME, args=[job.id], task_id=job.id, queue=job.queue, ignore_result=True,
        soft_time_limit=job.soft_time_limit,
        time_limit=job.soft_time_limit + current_app.config["TIME_LIMIT_GRACE"])


def submit_job(body: dict[str, Any], user: User) -> Job:
    """Plan, store and enqueue one job of ``user``; return it."""
    check_submission(user, body, current_app.config["RAW_WORKFLOW_ROLES"])
    job = new_job(plan_job(body), user)
    db.session.add(job)
    db.session.commit()
    try:
        enqueue(job)
    except ENQUEUE_ERRORS as exc:
        # Never leave a queued row without a broker message behind it.
        logger.error("enqueue of %s failed: %s", job.id, exc)
        db.session.execute(delete(Job).where(Job.id == job.id))
        db.session.commit()
        raise Unavailable("the queue (Redis) is unreachable; nothing was queued, try again") from exc
    return job


def estimate_job(body: dict[str, Any], user: User) -> dict[str, Any]:
    """Answer what a submission by ``user`` would cost and meet, without creating a job."""
    check_submission(user, body, current_app.config["RAW_WORKFLOW_ROLES"])
    plan = plan_job(body, check_guards=False)
    ahead = queued_ahead(plan.queue)
    try:
        described = instances.describe(get_redis(), {i.name: i for i in plan.candidates})["instances"]
    except RedisError as exc:
        raise Unavailable(f"Redis is unreachable ({exc}); try again") from exc
    idle = [row["name"] for row in described if row["worker_online"] and row["reachable"] and not row["running_job"]]
    return {
        "template": plan.template, "template_version": plan.template_version, "params": plan.params,
        "cost": plan.cost, "soft_time_limit": plan.soft_time_limit, "hard_time_limit": plan.hard_time_limit,
        "queue": plan.queue, "queue_position": ahead, "instances_idle": idle,
        "guards": {"pass": not plan.guard_failures, "failures": plan.guard_failures},
    }
