"""Thin named Celery tasks; the work lives in plain modules.

Whatever a run meets, its job's fate is the runner's or the recovery policy's
(comfyq.jobs.recovery): ``run_job`` is never retried by Celery. A job that must
run again gets a fresh message (comfyq.jobs.broker), and the row's ``attempts``
is the one count of its tries.
"""
from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Task, shared_task
from sqlalchemy.exc import SQLAlchemyError

from . import binding, intake
from ..webhooks import attempts as webhook_delivery, deliveries as webhooks
from ..errors import StoreUnavailable
from ..db.extensions import get_redis
from ..jobs import broker, recovery
from ..control.reconciler import reconcile as reconcile_jobs
from ..control.retention import expire_outputs as expire_old_outputs
from .runner import JobRunner

logger = logging.getLogger(__name__)


@shared_task(name=broker.RUN_JOB, bind=True, ignore_result=True)
def run_job(self: Task, job_id: str) -> str:
    """Run one job on this worker's ComfyUI instance; return how the run left it."""
    hard, soft = self.request.timelimit or (None, None)
    instance, hostname = binding.bound_instance(), self.request.hostname

    def close_intake() -> None:
        try:
            if hostname:
                intake.set_open(self.app, hostname, instance, False)
        except (broker.BrokerError, redis.RedisError, OSError) as exc:  # the health watch closes it a moment later
            logger.warning("could not close the intake of %s: %s", hostname, exc)

    runner = JobRunner(job_id, instance, binding.client(), binding.store(), get_redis(),
                       report=lambda meta: self.update_state(state="PROGRESS", meta=meta),
                       time_limits={"soft": soft, "hard": hard}, close_intake=close_intake, hostname=hostname)
    try:
        return runner.run()
    except (redis.RedisError, broker.BrokerError, StoreUnavailable) as exc:  # the job is as it was: try again
        return recovery.try_again(job_id, exc, (soft, hard))


@shared_task(name="comfyq.reconcile", ignore_result=True, soft_time_limit=60, time_limit=90)
def reconcile() -> dict[str, Any]:
    """Repair jobs whose recorded state disagrees with the broker and the workers."""
    return reconcile_jobs()


@shared_task(name="comfyq.expire_outputs", ignore_result=True, soft_time_limit=300, time_limit=360)
def expire_outputs() -> dict[str, Any]:
    """Delete outputs older than the retention age."""
    return expire_old_outputs()


@shared_task(name="comfyq.deliver_webhook", ignore_result=True)
def deliver_webhook(delivery_id: str) -> None:
    """Send one webhook delivery; while its receiver fails, send its next attempt for later."""
    try:
        countdown = webhook_delivery.attempt(delivery_id)
    except SQLAlchemyError as exc:  # the database is busy or away: the delivery is as it was
        logger.warning("webhook delivery %s: the database failed (%s); trying again", delivery_id, exc)
        countdown = 5.0
    if countdown is not None:
        broker.send_delivery(delivery_id, countdown)  # a fresh message; the delivery row counts the attempts


@shared_task(name="comfyq.resend_webhooks", ignore_result=True, soft_time_limit=60, time_limit=90)
def resend_webhooks() -> dict[str, Any]:
    """Send again the webhook deliveries whose messages were lost."""
    return webhooks.resend_overdue()
