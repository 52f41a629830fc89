"""Which jobs a GPU worker holds beyond its running one: the next ones, whose prompts may wait on its instance.

With ``COMFYQ_LOOKAHEAD`` = N the worker's one process prefetches N messages
(Celery's prefetch multiplier): the running job and up to N - 1 next ones. The
worker's main process notes each message it receives in the Redis list
``comfyq:lookahead:<instance>``, in order; the pool child takes a job off the
list as its run begins, and while it follows a prompt it places the prompts of
the jobs still listed (comfyq.worker.placement), so ComfyUI's own queue starts
the next one the moment the running one ends.
"""
from __future__ import annotations

import redis

from ..fleet import placements

KEY = "comfyq:lookahead:{}"
TTL = 24 * 3600  # the child takes its job off as its run begins; the TTL only bounds a crash


def reset(r: redis.Redis, instance: str) -> None:
    """Forget what a previous worker of ``instance`` held: a worker starts holding nothing."""
    r.delete(KEY.format(instance))


def note(r: redis.Redis, instance: str, job_id: str) -> None:
    """Add a job the worker just received to the end of its list."""
    r.pipeline(transaction=False).rpush(KEY.format(instance), job_id).expire(KEY.format(instance), TTL).execute()


def started(r: redis.Redis, instance: str, job_id: str) -> None:
    """Take a job whose run begins (or that ended before it) off the list."""
    r.lrem(KEY.format(instance), 0, job_id)


def begin(r: redis.Redis, instance: str, job_id: str) -> tuple[bool, str | None]:
    """Take a job whose run begins off the list; return whether the worker handed it back, and where it is placed.

    One round trip: the hand-back mark (comfyq.worker.handback) is consumed, and
    the placement (comfyq.fleet.placements) read, with the list's update.
    """
    handed, _, owner = r.pipeline(transaction=False).delete(placements.HANDED_KEY.format(job_id, instance)).lrem(
        KEY.format(instance), 0, job_id).get(placements.JOB_KEY.format(job_id)).execute()
    return bool(handed), owner.decode() if owner else None


def held(r: redis.Redis, instance: str) -> list[str]:
    """Return the jobs the worker holds and has not begun, in the order it received them."""
    return [m.decode() for m in r.lrange(KEY.format(instance), 0, -1)]


def prune(r: redis.Redis, instance: str, live: set[str], suspected: set[str]) -> set[str]:
    """Drop listed jobs the worker no longer holds (a revoked message never runs); return those seen so once.

    A job found listed but not held at two looks in a row goes: at one look it
    may be a message received a moment ago and not yet counted as reserved.
    """
    stale = set(held(r, instance)) - live
    gone = stale & suspected
    if gone:
        pipe = r.pipeline(transaction=False)
        for job_id in gone:
            pipe.lrem(KEY.format(instance), 0, job_id)
        pipe.execute()
    return stale - gone


def next_jobs(listed: list[str], running: str, depth: int) -> list[str]:
    """Return the jobs whose prompts may wait behind ``running``'s: the first ``depth`` - 1 others listed."""
    return [job_id for job_id in listed if job_id != running][:max(depth - 1, 0)]


def worth_noting(depth: int, task_name: str | None, run_job: str, eta: object) -> bool:
    """Tell whether the worker's main process should list a message it received.

    Only with a lookahead, only job runs, and only those due now: a message with
    a countdown (a job waiting for its instance, or coming back to reattach) is
    not the next job.
    """
    return depth > 1 and task_name == run_job and eta is None
