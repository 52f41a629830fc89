"""A run that finds its job's prompt already placed on the instance (comfyq.worker.placement) claims it.

The placing run already moved the job to ``running`` on this instance and
queued its prompt under the job's id, so the job's own run follows that prompt
and never posts it twice. A placed job that ended before its run (cancelled
while it waited) leaves nothing behind: its prompt is taken out of the queue.
"""
from __future__ import annotations

import logging

import redis

from ..comfy import ComfyClient
from ..config.settings import Instance
from ..fleet import instances
from ..jobs import recovery

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
    recovery.stop_prompt(client, job_id)

