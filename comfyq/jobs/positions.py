"""Queue positions from Redis sorted sets, so a lookup never counts rows.

``comfyq:waiting:<queue>`` holds the queued jobs of a queue, scored by when
they were admitted (the broker hands them out in that order);
``comfyq:pending:<user>`` holds a user's pending jobs, scored by creation;
``comfyq:fair:rotation`` holds the users with pending jobs in the order
admission serves them when nobody else arrives (``rotation_score``: least
recently served first, never served first of all, oldest pending job first),
with their weights other than 1 in the ``comfyq:fair:weights`` hash; admission writes both
after each decision.

A queued job's position is its rank in its queue. A pending job waits behind
every queued job (admitted jobs all go before any pending one), its owner's
older pending jobs, and what fair share gives the other users first if nobody
else arrives: admission serves users in rotation order, each user of weight w
w jobs a turn (what it holds now only delays it while those jobs run, and
those end first), so the k-th pending job (from 0) of a user u of weight w_u goes
in round R = k // w_u, after ``min(p_v, w_v·(R + 1))`` jobs of each user v
before u in the rotation and ``min(p_v, w_v·R)`` of each user after (p_v: v's
pending jobs). A user's first pending job costs a walk over the users ahead of
it; a later one, over every user with pending jobs (one Lua script, one round
trip). This is exact for equal weights when jobs end in the order they
started; with weights it is an estimate, as ends interleave with the turns.
A job whose prompt a worker placed ahead (comfyq.worker.placement) stays
``queued`` in its set until its run claims it, first in line as it was admitted
first. The DB stays the truth: ``resync`` (run by the reconciler) rebuilds any
set whose size disagrees with it and the rotation, and a lookup Redis cannot
answer falls back to counting.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Callable, Iterable

import redis
from flask import current_app
from sqlalchemy import func, select

from ..accounts.limits import limits_for
from ..config.settings import SHARED_QUEUE
from ..db import piped
from ..db.extensions import db, get_redis
from .machine import JobStatus, Moved
from ..db.models import Job, User, aware

logger = logging.getLogger(__name__)
WAITING = "comfyq:waiting:"
PENDING = "comfyq:pending:"
ROTATION = "comfyq:fair:rotation"
WEIGHTS = "comfyq:fair:weights"
NEVER_SERVED = -1e10  # plus the oldest pending job's timestamp: never-served users first, oldest first
# KEYS: the user's pending set, the rotation, the weights, then every queue's waiting set.
# ARGV: the job ('': the owner's next job, not yet made), its owner, the pending sets' prefix, and for a
# next job the owner's rotation score (used if they are not in the rotation) and weight.
# Returns -1 if the job is not in its owner's set.
PENDING_POSITION = """
local call = redis.call
local k
if ARGV[1] == '' then k = call('ZCARD', KEYS[1]) else k = call('ZRANK', KEYS[1], ARGV[1]) end
if not k then return -1 end
local total = k
for i = 4, #KEYS do total = total + call('ZCARD', KEYS[i]) end
local me = ARGV[2]
local wu = tonumber(call('HGET', KEYS[3], me)) or tonumber(ARGV[5]) or 1
local round = math.floor(k / wu)
local mine = call('ZRANK', KEYS[2], me)
if not mine and ARGV[4] ~= '' then mine = call('ZCOUNT', KEYS[2], '-inf', '(' .. ARGV[4]) end
local members
if round == 0 then
  if mine == 0 then return total end
  members = call('ZRANGE', KEYS[2], 0, mine and mine - 1 or -1)
else
  members = call('ZRANGE', KEYS[2], 0, -1)
end
local n = #members
if n == 0 then return total end
local weighted = call('HLEN', KEYS[3]) > 0
local weights = weighted and call('HMGET', KEYS[3], unpack(members)) or {}
local prefix = ARGV[3]
local before = mine or n
for i = 1, n do
  local v = members[i]
  if v ~= me then
    local p = call('ZCARD', prefix .. v)
    if p > 0 then
      local w = tonumber(weights[i]) or 1
      local c = w * round
      if i <= before then c = c + w end
      if p < c then c = p end
      total = total + c
    end
  end
end
return total
"""


def _score(moment: datetime) -> float:
    """Return a timestamp as a sorted-set score."""
    return aware(moment).timestamp()


def rotation_score(last_served: int | None, oldest: datetime) -> float:
    """Return a user's place in the fair-share rotation (the smallest goes first)."""
    return NEVER_SERVED + _score(oldest) if last_served is None else float(last_served)


def rotate(places: dict[str, tuple[float, int] | None]) -> None:
    """Put users at their (score, weight) in the rotation, or take out those mapped to None (best effort)."""
    def build(pipe: redis.client.Pipeline) -> None:
        for user, place in places.items():
            if place is None:
                pipe.zrem(ROTATION, user)
            else:
                pipe.zadd(ROTATION, {user: place[0]})
            if place is None or place[1] == 1:  # only weights other than 1 are kept: most lookups skip the hash
                pipe.hdel(WEIGHTS, user)
            else:
                pipe.hset(WEIGHTS, user, place[1])
    if places:
        _quietly(build)


def fair_ahead(k: int, weight: int, others: Iterable[tuple[bool, int, int]]) -> int:
    """Return how many other users' pending jobs admission takes before a user's k-th pending job.

    ``others``: (before the user in the rotation, pending jobs, weight) of each other user.
    """
    round_ = k // weight
    return sum(min(p, w * (round_ + (1 if before else 0))) for before, p, w in others if p > 0)


def pending_added(jobs: Iterable[Job]) -> None:
    """Record new pending jobs, as the announcer announces them (best effort: ``resync`` repairs a miss)."""
    _quietly(lambda pipe: [pipe.zadd(PENDING + str(j.user_id), {j.id: _score(j.created_at)}) for j in jobs])


def admitted(jobs: Iterable[Job]) -> None:
    """Move jobs from their owners' pending sets to their queues' sets, in the order the announcer tells them."""
    now = time.time()
    _quietly(lambda pipe: [(pipe.zrem(PENDING + str(j.user_id), j.id),
                            pipe.zadd(WAITING + j.queue, {j.id: now + n * 1e-6})) for n, j in enumerate(jobs)])


def readmit_pending(jobs: Iterable[tuple[str, str | None, str, datetime]]) -> None:
    """Put jobs (id, owner, queue, created) whose admission was rolled back back in their owners' pending sets."""
    _quietly(lambda pipe: [(pipe.zrem(WAITING + queue, job_id), pipe.zadd(PENDING + str(user_id),
                                                                          {job_id: _score(created)}))
                           for job_id, user_id, queue, created in jobs])


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
    """Run the commands ``build`` adds to a pipeline (with a move's other writes, comfyq.db.piped); log a failure."""
    piped.write(get_redis(), build, _not_updated)


def _not_updated(exc: Exception) -> None:
    """Log that Redis refused or missed a change of the sets."""
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
            keys = [PENDING + str(job.user_id), ROTATION, WEIGHTS, *(WAITING + q for q in _queues(job.queue))]
            found = int(_pending_script(r)(keys=keys, args=[job.id, str(job.user_id), PENDING, "", ""], client=r))
            if found >= 0:
                return found
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
    places = rotation_from_db()
    me = str(job.user_id)
    return _counted_pending(me, db.session.scalar(own) or 0, places, places[me][1] if me in places else 1)


def _counted_pending(user_id: str, k: int, places: dict[str, tuple[float, int, int]], weight: int,
                     score: float | None = None) -> int:
    """Return, counting in the DB, the position of a user's k-th pending job (``score``: theirs if not in ``places``)."""
    order = sorted(places, key=lambda user: (places[user][0], user))
    if user_id in places:
        mine = order.index(user_id)
    else:
        mine = sum(1 for user in order if score is None or places[user][0] < score)
    others = [(n < mine, places[user][2], places[user][1]) for n, user in enumerate(order) if user != user_id]
    everyone = db.session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED.value))
    return (everyone or 0) + k + fair_ahead(k, weight, others)


def rotation_from_db() -> dict[str, tuple[float, int, int]]:
    """Return each user with pending jobs: (rotation score, weight, pending jobs), from the DB."""
    pending = {owner: (first, number) for owner, first, number in db.session.execute(
        select(Job.user_id, func.min(Job.created_at), func.count()).where(
            Job.status == JobStatus.PENDING.value, Job.user_id.is_not(None)).group_by(Job.user_id))}
    places = {}
    for user in (db.session.scalars(select(User).where(User.id.in_(pending))) if pending else []):
        weight = limits_for(user, current_app.config).weight
        first, number = pending[user.id]
        places[user.id] = (rotation_score(user.last_served, first), weight, number)
    return places


_scripts: dict[int, Any] = {}


def _pending_script(r: redis.Redis) -> Any:
    """Return the pending-position script, registered once per client (then run by its SHA)."""
    found = _scripts.get(id(r))
    if found is None:
        found = _scripts[id(r)] = r.register_script(PENDING_POSITION)
    return found


def next_pending_position(user: User, queue: str, weight: int) -> int:
    """Return how many jobs would start before a job ``user`` submits now if it has to wait pending."""
    score = rotation_score(user.last_served, datetime.now().astimezone())
    try:
        r = get_redis()
        keys = [PENDING + str(user.id), ROTATION, WEIGHTS, *(WAITING + q for q in _queues(queue))]
        return int(_pending_script(r)(keys=keys, args=["", str(user.id), PENDING, repr(score), weight], client=r))
    except (redis.RedisError, OSError) as exc:
        logger.warning("queue position of a new job of %s counted in the DB, Redis is unreachable: %s", user.id, exc)
    places = rotation_from_db()
    return _counted_pending(user.id, places[user.id][2] if user.id in places else 0, places, weight, score)


def _queues(queue: str) -> list[str]:
    """Return every GPU queue: all their queued jobs were admitted, so all start before any pending job."""
    names = {SHARED_QUEUE, queue, *(q for i in current_app.config["INSTANCES"].values() for q in i.queues())}
    return sorted(names)


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
    places = rotation_from_db()
    pipe = r.pipeline(transaction=True)  # the rotation is rebuilt each pass: one entry per user with pending jobs
    pipe.delete(ROTATION, WEIGHTS)
    if places:
        pipe.zadd(ROTATION, {user: place[0] for user, place in places.items()})
        weighted = {user: place[1] for user, place in places.items() if place[1] != 1}
        if weighted:
            pipe.hset(WEIGHTS, mapping=weighted)
    pipe.execute()
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
