"""Endings for jobs whose task could not finish normally."""
from __future__ import annotations

import logging

from celery.exceptions import TimeLimitExceeded

from .comfy import ComfyClient, ComfyError
from .config import Instance
from .jobs import JobStatus, transition

logger = logging.getLogger(__name__)


def give_up(job_id: str, attempts: int, exc: BaseException) -> str:
    """Fail a job that could not reach an instance in ``attempts`` tries."""
    transition(job_id, JobStatus.FAILED, [JobStatus.QUEUED, JobStatus.RUNNING], error={
        "type": "instance_unavailable", "message": f"no instance could run the job in {attempts} attempts: {exc}"})
    return JobStatus.FAILED.value


def end_orphaned_job(job_id: str, exc: BaseException, instance: Instance | None) -> None:
    """End a job whose task died without an outcome; after a hard limit, stop its prompt too."""
    status = JobStatus.TIMED_OUT if isinstance(exc, TimeLimitExceeded) else JobStatus.FAILED
    error = {"type": status.value, "message": f"the task ended without an outcome: {exc!r}"}
    if not transition(job_id, status, [JobStatus.RUNNING], error=error):
        return
    logger.warning("job %s ended %s by the failure handler: %r", job_id, status, exc)
    if instance is not None:
        # The killed child cannot interrupt its own prompt; the instance would stay busy.
        try:
            with ComfyClient(instance.url, connect_timeout=2.0, read_timeout=5.0, retries=0) as client:
                client.delete_from_queue([job_id])  # first, so a prompt starting meanwhile is still caught
                client.interrupt(job_id)
        except ComfyError as err:
            logger.warning("could not stop prompt %s on %s: %s", job_id, instance.name, err)
