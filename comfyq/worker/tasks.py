"""The GPU worker's task, ``comfyq.run_job``: a thin shell around the runner.

Whatever the run meets, the job's fate is the runner's or the recovery policy's
(comfyq.jobs.recovery): a task is never retried by Celery. A job that must run
again gets a fresh message (comfyq.jobs.broker), and the row's ``attempts`` is
the one count of its tries. The control queue's tasks are in
comfyq.control.tasks, the webhooks queue's in comfyq.webhooks.tasks.
"""
from __future__ import annotations

import logging

import redis
from celery import Task, shared_task

from . import binding, intake
from ..db.extensions import get_redis
from ..errors import StoreUnavailable
from ..jobs import broker, recovery
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
