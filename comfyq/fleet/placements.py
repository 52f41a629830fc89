"""Which queued jobs have their prompts placed ahead on an instance, in Redis.

A GPU worker with a lookahead (comfyq.worker.placement) posts the prompt of
a job it holds to its instance while another prompt runs there; the job stays
``queued`` until its own run claims it. Two records say so:

- ``comfyq:job:<id>:placed`` names the instance; it is set only if absent, so a
  job is placed on one instance at most, and any run that meets the job reads it;
- ``comfyq:instance:<name>:placed`` lists the jobs placed on an instance, so its
  worker can withdraw the prompts of jobs that ended (say, cancelled) while they
  waited there, and drain them when it stops.

The owner's run, a withdrawal or a hand-back removes both (``unplace``). The
TTLs only bound what a crash leaves behind.
"""
from __future__ import annotations

import redis

JOB_KEY = "comfyq:job:{}:placed"
INSTANCE_KEY = "comfyq:instance:{}:placed"
HANDED_KEY = "comfyq:job:{}:handed:{}"  # a job its worker sent back to the queue: that worker's message is void
TTL = 24 * 3600


def place(r: redis.Redis, instance: str, job_id: str) -> bool:
    """Record ``job_id`` as placed on ``instance`` unless it is placed already; return whether it is now."""
    if not r.set(JOB_KEY.format(job_id), instance, nx=True, ex=TTL):
        return False
    r.pipeline(transaction=False).sadd(INSTANCE_KEY.format(instance), job_id).expire(
        INSTANCE_KEY.format(instance), TTL).execute()
    return True


def placed_on(r: redis.Redis, job_id: str) -> str | None:
    """Return the instance ``job_id``'s prompt is placed on, if any."""
    found = r.get(JOB_KEY.format(job_id))
    return found.decode() if found else None


def unplace(r: redis.Redis, instance: str, job_id: str) -> None:
    """Forget that ``job_id``'s prompt waits on ``instance``."""
    r.pipeline(transaction=False).srem(INSTANCE_KEY.format(instance), job_id).delete(JOB_KEY.format(job_id)).execute()


def placed_jobs(r: redis.Redis, instance: str) -> set[str]:
    """Return the jobs whose prompts were placed on ``instance`` and not yet claimed or withdrawn."""
    return {m.decode() for m in r.smembers(INSTANCE_KEY.format(instance))}


def hand_back(r: redis.Redis, instance: str, job_id: str) -> None:
    """Record that ``instance``'s worker gave up the message it holds for ``job_id``."""
    r.set(HANDED_KEY.format(job_id, instance), 1, ex=TTL)


def take_hand_back(r: redis.Redis, instance: str, job_id: str) -> None:
    """Forget a hand-back that did not happen: ``instance``'s message for ``job_id`` runs after all."""
    r.delete(HANDED_KEY.format(job_id, instance))


def handed_back(r: redis.Redis, instance: str, job_id: str) -> bool:
    """Tell whether ``instance``'s worker gave up its message for ``job_id`` (without consuming the mark)."""
    return bool(r.exists(HANDED_KEY.format(job_id, instance)))
