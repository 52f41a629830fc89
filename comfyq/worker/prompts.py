"""What a run learns from instances and prompts, for the runner and the recovery policy.

Whether this worker's instance may start a job now, whether a dead worker's
prompt can still be followed where it runs (taking the job over if so), how a
prompt that went wrong ends its job, whether a stopped prompt left, and whether
the instance is down. What follows a refusal, a lost instance or a dead worker
is comfyq.jobs.recovery's to decide.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import redis

from ..comfy import (ComfyClient, ComfyError, ComfyProtocolError, ExecutionFailed, ExecutionInterrupted, PromptLost,
                     PromptRejected)
from ..config.settings import Instance
from ..db.models import Job
from ..fleet import instances
from ..jobs.machine import JobStatus, take_over

logger = logging.getLogger(__name__)


def refusal(r: redis.Redis, instance: Instance) -> str | None:
    """Return why ``instance`` must not start a job now (stuck, unhealthy, restarting), or None if it may."""
    try:  # one round trip
        found_state, stuck = r.pipeline(transaction=False).hget(instances.STATUS_KEY.format(instance.name), "state") \
            .get(instances.STUCK_KEY.format(instance.name)).execute()
    except redis.RedisError:
        return None  # no verdict to go by: the run itself finds out
    state = (found_state or b"").decode()
    if stuck is None and state in ("", instances.HEALTHY):
        return None
    return f"instance {instance.name} is {'stuck' if stuck else state}"


def adopt(job: Job, other: Instance, hostname: str | None) -> ComfyClient | None:
    """Take over a dead worker's job if its prompt is still on ``other``; return a client of ``other``."""
    client = ComfyClient(other.url, connect_timeout=2.0, read_timeout=10.0, retries=0)
    try:
        where = client.find_prompt(job.id)
    except ComfyError:
        where = "unknown"
    # Guarded: of two workers that both find the owner gone, one takes the job over.
    if where == "unknown" or not take_over(job.id, job.worker, hostname):
        client.close()
        return None
    logger.warning("job %s: worker of %s is gone; following its prompt there (%s)", job.id, other.name, where)
    return client


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
