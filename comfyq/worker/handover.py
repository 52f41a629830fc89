"""Where a job may run now: refusals by an unfit instance, and take-overs of a dead worker's job."""
from __future__ import annotations

import logging

import redis

from ..fleet import instances
from ..comfy import ComfyClient, ComfyError
from ..config.settings import Instance
from ..jobs.machine import take_over
from ..db.models import Job

logger = logging.getLogger(__name__)


class InstanceUnavailable(Exception):
    """The job cannot run here now; retry it on ``queue`` (after ``countdown`` seconds, or a backoff).

    ``counted`` is False for a hand-over that is no failure (to the worker that runs
    the job, or while a supervised instance restarts): it uses up no retry.
    """

    def __init__(self, message: str, queue: str, countdown: float | None = None, counted: bool = True) -> None:
        super().__init__(message, queue, countdown, counted)
        self.message, self.queue, self.countdown, self.counted = message, queue, countdown, counted

    def __str__(self) -> str:
        return self.message


def refusal(r: redis.Redis, instance: Instance, job: Job) -> InstanceUnavailable | None:
    """Return why ``instance`` must not start ``job`` now (stuck or unhealthy), or None if it may."""
    try:
        state = (r.hget(instances.STATUS_KEY.format(instance.name), "state") or b"").decode()
        stuck = instances.stuck_prompt(r, instance.name)
    except redis.RedisError:
        return None  # no verdict to go by: the run itself finds out
    if stuck is None and state in ("", instances.HEALTHY):
        return None
    message = f"instance {instance.name} is {'stuck' if stuck else state}"
    if job.queue != instance.queue:
        return InstanceUnavailable(message, job.queue, countdown=0)  # any other capable instance
    # Pinned here: wait, without using up retries while a supervised ComfyUI restarts.
    restarting = state == instances.RESTARTING
    return InstanceUnavailable(message, job.queue, countdown=2 if restarting else None, counted=not restarting)


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
