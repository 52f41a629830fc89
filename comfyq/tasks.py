"""Thin named Celery tasks; the work lives in plain modules."""
from __future__ import annotations

import logging
from celery import Task, shared_task
from celery.exceptions import TimeLimitExceeded

from . import binding
from .extensions import get_redis
from .jobs import JobStatus, transition
from .runner import InstanceUnavailable, JobRunner

logger = logging.getLogger(__name__)


@shared_task(name="comfyq.run_job", bind=True, max_retries=5, ignore_result=True)
def run_job(self: Task, job_id: str) -> str:
    """Run one job on this worker's ComfyUI instance."""
    runner = JobRunner(job_id, binding.bound_instance(), binding.client(), binding.store(), get_redis(),
                       report=lambda meta: self.update_state(state="PROGRESS", meta=meta))
    try:
        return runner.run()
    except InstanceUnavailable as exc:
        if self.request.retries >= self.max_retries:
            transition(job_id, JobStatus.FAILED, [JobStatus.QUEUED], error={
                "type": "instance_unavailable",
                "message": f"no instance could run the job after {self.max_retries + 1} attempts: {exc}"})
            return JobStatus.FAILED.value
        # Back to the same queue: on the shared queue another instance may take it.
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries, 30))


def end_orphaned_job(job_id: str, exc: BaseException) -> None:
    """End a job whose task failed without recording an outcome (hard limit, bug)."""
    status = JobStatus.TIMED_OUT if isinstance(exc, TimeLimitExceeded) else JobStatus.FAILED
    error = {"type": status.value, "message": f"the task ended without an outcome: {exc!r}"}
    if transition(job_id, status, [JobStatus.RUNNING], error=error):
        logger.warning("job %s ended %s by the failure handler: %r", job_id, status, exc)
