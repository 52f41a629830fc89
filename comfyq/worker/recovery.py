"""Endings for jobs whose task could not finish normally."""
from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import TimeLimitExceeded

from ..comfy import (ComfyClient, ComfyError, ComfyProtocolError, ExecutionFailed, ExecutionInterrupted, PromptLost,
                     PromptRejected)
from ..config.settings import Instance
from ..db.extensions import db
from ..jobs.machine import JobStatus, transition
from ..db.models import Job

logger = logging.getLogger(__name__)


def prompt_failure(exc: ComfyError, cancelling: bool) -> tuple[JobStatus, dict[str, Any]]:
    """Return the status and error record of a job whose prompt went wrong with ``exc``."""
    if isinstance(exc, PromptRejected):
        return JobStatus.FAILED, {"type": "prompt_rejected", "message": f"ComfyUI rejected the workflow: {exc.message}",
                                  "error": exc.error, "node_errors": exc.node_errors}
    if isinstance(exc, ExecutionFailed):
        return JobStatus.FAILED, {"type": "execution_failed", "node_id": exc.node_id, "node_type": exc.node_type,
                                  "exception_type": exc.exception_type,
                                  "message": f"node {exc.node_id} ({exc.node_type}) failed: {exc.message}"}
    if isinstance(exc, (ExecutionInterrupted, PromptLost)):
        if cancelling:
            return JobStatus.CANCELLED, {"type": "cancelled", "message": "cancelled by request"}
        return JobStatus.FAILED, {"type": "interrupted", "message": f"the prompt ended early: {exc}"}
    assert isinstance(exc, ComfyProtocolError)
    return JobStatus.FAILED, {"type": "comfyui_error", "message": f"ComfyUI answered unexpectedly: {exc}"}


def give_up(job_id: str, attempts: int, exc: BaseException, instance: Instance | None) -> str:
    """Fail a job no instance could run in ``attempts`` tries: a queued one, or one running on ``instance``."""
    error = {"type": "instance_unavailable", "message": f"no instance could run the job in {attempts} attempts: {exc}"}
    if transition(job_id, JobStatus.FAILED, [JobStatus.QUEUED], error=error):
        return JobStatus.FAILED.value
    job = db.session.get(Job, job_id)
    # A job running elsewhere is that worker's to end; one running here has its prompt stopped.
    if instance is None or job is None or job.instance != instance.name:
        return job.status if job is not None else "missing"
    if not transition(job_id, JobStatus.FAILED, [JobStatus.RUNNING], error=error):
        return "superseded"
    stop_prompt_on(instance, job_id)
    return JobStatus.FAILED.value


def end_orphaned_job(job_id: str, exc: BaseException, instance: Instance | None) -> bool:
    """End a job whose task died without an outcome, stopping its prompt; return whether it ended it."""
    status = JobStatus.TIMED_OUT if isinstance(exc, TimeLimitExceeded) else JobStatus.FAILED
    if status is JobStatus.TIMED_OUT:
        message = f"the job ran past its hard time limit ({exc}); its worker process was killed"
    else:
        message = f"the task ended without an outcome: {exc!r}"
    error = {"type": status.value, "message": message}
    if not transition(job_id, status, [JobStatus.RUNNING], error=error):
        return False
    logger.warning("job %s ended %s by the failure handler: %r", job_id, status, exc)
    if instance is not None:
        stop_prompt_on(instance, job_id)  # the killed child cannot; the instance would stay busy
    return True


def stop_prompt(client: ComfyClient, prompt_id: str) -> None:
    """Drop a prompt if pending and interrupt it if running; log, never raise, if the instance is gone."""
    try:
        client.delete_from_queue([prompt_id])  # first, so a prompt starting meanwhile is still caught
        client.interrupt(prompt_id)
    except ComfyError as exc:
        logger.warning("could not stop prompt %s on %s: %s", prompt_id, client.base_url, exc)


def stop_prompt_on(instance: Instance, prompt_id: str) -> None:
    """Stop a prompt on ``instance`` with a short-lived client of its own; never raise."""
    with ComfyClient(instance.url, connect_timeout=2.0, read_timeout=5.0, retries=0) as client:
        stop_prompt(client, prompt_id)


def prompt_left(client: ComfyClient, prompt_id: str, grace: float, every: float = 0.25) -> bool:
    """Wait up to ``grace`` seconds for a stopped prompt to leave the instance; return whether it did."""
    deadline = time.monotonic() + grace
    while True:
        try:
            if client.find_prompt(prompt_id) in ("done", "unknown"):
                return True
        except ComfyError:
            return True  # the instance is gone, and the prompt with it: the health check takes it from here
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)


def instance_down(client: ComfyClient, probes: int = 3, every: float = 1.0) -> bool:
    """Return whether the instance failed ``probes`` health checks in a row, ``every`` seconds apart."""
    for attempt in range(probes):
        try:
            client.system_stats()
            return False
        except ComfyError:
            if attempt + 1 < probes:
                time.sleep(every)
    return True
