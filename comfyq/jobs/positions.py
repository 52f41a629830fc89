"""Queue positions from two kinds of Redis sorted sets, so a lookup never counts rows.

``comfyq:waiting:<queue>`` holds the queued jobs of a queue, scored by when
they were admitted (the broker hands them out in that order);
``comfyq:pending:<user>`` holds a user's pending jobs, scored by creation.
A queued job's position is its rank in its queue; a pending job waits behind
everything queued in its queue and its owner's older pending jobs. The DB
stays the truth: ``resync`` (run by the reconciler) rebuilds any set whose size
disagrees with it, and a lookup Redis cannot answer falls back to counting.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Callable, Iterable

import redis
from sqlalchemy import func, select

from ..db.extensions import db, get_redis
from .machine import JobStatus, Moved
from ..db.models import Job, aware

logger = logging.getLogger(__name__)
WAITING = "comfyq:waiting:"
PENDING = "comfyq:pending:"


def _score(moment: datetime) -> float:
    """Return a timestamp as a sorted-set score."""
    return aware(moment).timestamp()


def pending_added(jobs: Iterable[Job]) -> None:
    """Record new pending jobs, as the announcer announces them (best effort: ``resync`` repairs a miss)."""
    _quietly(lambda pipe: [pipe.zadd(PENDING + str(j.user_id), {j.id: _score(j.created_at)}) for j in jobs])


def admitted(jobs: Iterable[Job]) -> None:
    """Move jobs from their owners' pending sets to their queues' sets, in the order the announcer tells them."""
    now = time.time()
    _quietly(lambda pipe: [(pipe.zrem(PENDING + str(j.user_id), j.id),
                            pipe.zadd(WAITING + j.queue, {j.id: now + n * 1e-6})) for n, j in enumerate(jobs)])


def track(moved: Moved) -> Callable[[], None]:
    """Return what keeps the sets in step with a transition once it commits (a ``jobs.on_moved`` hook)."""
    def apply(pipe: redis.client.Pipeline) -> None:
        pipe.zrem(PENDING + str(moved.user_id), moved.job_id)
        if moved.to == JobStatus.QUEUED:  # back in the queue after a lost instance: at its end
            pipe.zadd(WAITING + moved.queue, {moved.job_id: time.time()})
        else:
            pipe.zrem(WAITING + moved.queue, moved.job_id)
    return lambda: _quietly(apply)


def _quietly(build: Callable[[redis.client.Pipeline], Any]) -> None:
    """Run the commands ``build`` adds to a pipeline; log a Redis failure instead of raising."""
    try:
        pipe = get_redis().pipeline(transaction=False)
        build(pipe)
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        logger.warning("queue positions not updated, Redis is unreachable: %s", exc)


def position(job: Job) -> int | None:
    """Return how many jobs will start before ``job`` as things stand, or None once it left the queue."""
    if job.status not in (JobStatus.PENDING, JobStatus.QUEUED):
        return None
    try:
        r = get_redis()
        if job.status == JobStatus.QUEUED:
            rank = r.zrank(WAITING + job.queue, job.id)
            if rank is not None:
                return int(rank)
        else:
            pipe = r.pipeline(transaction=False)
            pipe.zcard(WAITING + job.queue)
            pipe.zrank(PENDING + str(job.user_id), job.id)
            queued, rank = pipe.execute()
            if rank is not None:
                return int(queued) + int(rank)
    except (redis.RedisError, OSError) as exc:
        logger.warning("queue position of %s counted in the DB, Redis is unreachable: %s", job.id, exc)
    return counted_position(job)


def counted_position(job: Job) -> int:
    """Return the position by counting rows: exact but slow with a long backlog (the fallback)."""
    queued = select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED.value, Job.queue == job.queue)
    if job.status == JobStatus.QUEUED:  # in the order they entered the queue, as the sets score them
        entered = (Job.updated_at < job.updated_at) | ((Job.updated_at == job.updated_at) & (Job.id < job.id))
        return db.session.scalar(queued.where(entered)) or 0
    earlier = (Job.created_at < job.created_at) | ((Job.created_at == job.created_at) & (Job.id < job.id))
    own = select(func.count()).select_from(Job).where(Job.user_id == job.user_id,
                                                      Job.status == JobStatus.PENDING.value, earlier)
    return (db.session.scalar(queued) or 0) + (db.session.scalar(own) or 0)


def waiting_in(queue: str) -> int:
    """Return how many jobs are queued in ``queue`` now."""
    try:
        return int(get_redis().zcard(WAITING + queue))
    except (redis.RedisError, OSError):
        return db.session.scalar(select(func.count()).select_from(Job).where(
            Job.status == JobStatus.QUEUED.value, Job.queue == queue)) or 0


def resync() -> list[str]:
    """Rebuild every set whose size differs from the DB's count; return the keys rebuilt."""
    r = get_redis()
    wanted: dict[str, int] = {}
    for queue, number in db.session.execute(select(Job.queue, func.count()).where(
            Job.status == JobStatus.QUEUED.value).group_by(Job.queue)):
        wanted[WAITING + queue] = number
    for user_id, number in db.session.execute(select(Job.user_id, func.count()).where(
            Job.status == JobStatus.PENDING.value).group_by(Job.user_id)):
        wanted[PENDING + str(user_id)] = number
    known = {key.decode() for pattern in (WAITING, PENDING) for key in r.scan_iter(pattern + "*", count=1000)}
    keys = sorted(known | set(wanted))
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.zcard(key)
    rebuilt = [key for key, size in zip(keys, pipe.execute()) if size != wanted.get(key, 0)]
    for key in rebuilt:
        _rebuild(r, key)
    return rebuilt


def _rebuild(r: redis.Redis, key: str) -> None:
    """Replace one set with what the DB holds now."""
    if key.startswith(WAITING):
        rows = select(Job.id, Job.updated_at).where(Job.status == JobStatus.QUEUED.value,
                                                    Job.queue == key[len(WAITING):])
    else:
        rows = select(Job.id, Job.created_at).where(Job.status == JobStatus.PENDING.value,
                                                    Job.user_id == key[len(PENDING):])
    members = [(job_id, _score(moment)) for job_id, moment in db.session.execute(rows)]
    pipe = r.pipeline(transaction=True)
    pipe.delete(key)
    for start in range(0, len(members), 10_000):
        pipe.zadd(key, dict(members[start:start + 10_000]))
    pipe.execute()
