"""Thin named Celery tasks; the work lives in plain modules."""
from __future__ import annotations

from celery import Task, shared_task

from . import binding
from .extensions import get_redis
from .recovery import give_up
from .runner import InstanceUnavailable, JobRunner


@shared_task(name="comfyq.run_job", bind=True, max_retries=5, ignore_result=True)
def run_job(self: Task, job_id: str) -> str:
    """Run one job on this worker's ComfyUI instance."""
    hard, soft = self.request.timelimit or (None, None)
    runner = JobRunner(job_id, binding.bound_instance(), binding.client(), binding.store(), get_redis(),
                       report=lambda meta: self.update_state(state="PROGRESS", meta=meta),
                       time_limits={"soft": soft, "hard": hard})
    try:
        return runner.run()
    except InstanceUnavailable as exc:
        if self.request.retries >= self.max_retries:
            return give_up(job_id, self.max_retries + 1, exc)
        # The shared queue lets another instance take it; an instance queue brings it back to reattach.
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries, 30), queue=exc.queue)
