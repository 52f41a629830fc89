"""A run that finds its job's prompt already placed on the instance (comfyq.worker.placement) claims it.

The placing run already moved the job to ``running`` on this instance and
queued its prompt under the job's id, so the job's own run follows that prompt
and never posts it twice. A placed job that ended before its run (cancelled
while it waited) leaves nothing behind: its prompt is taken out of the queue,
and a cancelled one whose prompt never began gets its credits back (a job
cancelled while running is not refunded, but this one never held the GPU).
A placed job whose instance turned unfit before its run (stuck, restarting)
is taken back while its prompt still waits, and goes where a refused job goes.
"""
from __future__ import annotations

import logging

import redis

from ..accounts import credits
from ..comfy import ComfyClient, ComfyError
from ..db.extensions import db
from ..config.settings import Instance
from ..fleet import instances
from ..jobs import recovery
from ..jobs.machine import JobStatus

logger = logging.getLogger(__name__)


def claim(r: redis.Redis, instance: Instance, job_id: str) -> bool:
    """Take a placed job for its run; return whether its prompt was placed on ``instance`` ahead of it."""
    try:
        return instances.unmark_placed(r, instance.name, job_id)
    except (redis.RedisError, OSError) as exc:
        logger.warning("job %s: could not tell whether it was placed (Redis: %s); looking on the instance", job_id, exc)
        return False


def let_go(client: ComfyClient, job_id: str, status: str) -> None:
    """Take the prompt of a placed job that already ended ``status`` out of the instance's queue."""
    logger.info("job %s ended %s while its prompt waited on %s; withdrawing it", job_id, status, client.base_url)
    withdraw(client, job_id, cancelled=status == JobStatus.CANCELLED)


def withdraw(client: ComfyClient, job_id: str, cancelled: bool = True) -> bool:
    """Stop a placed prompt; refund a cancelled job whose prompt never began (once); return whether it did."""
    recovery.stop_prompt(client, job_id)
    try:
        never_began = client.find_prompt(job_id) == "unknown"
    except ComfyError:
        return False  # cannot tell: no refund, as for any job cancelled while running
    if not (cancelled and never_began):
        return False
    returned = credits.refund(job_id, note="cancelled before its prompt began")
    db.session.commit()
    return returned > 0


def take_back(client: ComfyClient, job_id: str) -> bool:
    """Withdraw a placed prompt that has not begun; return whether it waited and is gone now."""
    try:
        if client.find_prompt(job_id) != "pending":
            return False  # running or over: its run follows it
        client.delete_from_queue([job_id])
        return client.find_prompt(job_id) == "unknown"
    except ComfyError:
        return False
