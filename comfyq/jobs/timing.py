"""Estimated start times from recent job durations, per template and instance.

Each job that succeeds leaves its run time (start to end on its instance) in
``comfyq:timing:<instance>``, the newest ``RECENT`` kept. A waiting job with
``ahead`` jobs before it starts when the ``ahead + 1``-th GPU turn comes up:
each instance that serves its queue (with a live worker) is free once its
running job has had its expected time (that job's template's recent mean on
that instance, else the instance's mean), then takes a job every ``each``
seconds (the instance's recent mean over all templates: the mix of jobs
before yours is the mix the fleet ran lately). The start is the earliest
moment by which ``ahead + 1`` turns have begun (``starts_in``). No estimate
(None) while no worker of the queue is online or no job has succeeded lately.
"""
from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timedelta, timezone
from statistics import fmean
from typing import Callable, NamedTuple

import redis
from flask import current_app
from sqlalchemy import select

from ..config.settings import SHARED_QUEUE
from ..db import piped
from ..db.extensions import db, get_redis
from ..db.models import Job, aware
from ..fleet.instances import RUNNING_KEY
from ..fleet.lease import PRESENCE_KEY
from .machine import JobStatus, Moved

logger = logging.getLogger(__name__)
TIMES = "comfyq:timing:"
RECENT = 50  # run times kept per instance
KEEP = 7 * 24 * 3600  # seconds an instance's times outlive its last job
SHORTEST = 0.05  # seconds: a turn is never taken as shorter (a mean of failed-fast runs cannot divide by zero)


class Lane(NamedTuple):
    """One instance as the estimate sees it."""

    free_in: float  # seconds until its running job is expected to end (0: idle)
    each: float  # seconds a job takes there


def starts_in(ahead: int, lanes: list[Lane]) -> float | None:
    """Return the seconds until the ``ahead + 1``-th turn on ``lanes`` begins, or None without lanes."""
    if not lanes:
        return None
    need = ahead + 1

    def begun(t: float) -> int:
        return sum(1 + math.floor((t - lane.free_in) / lane.each) for lane in lanes if t >= lane.free_in)

    low, high = 0.0, max(lane.free_in for lane in lanes) + need * max(lane.each for lane in lanes)
    if begun(low) >= need:
        return 0.0
    for _ in range(60):  # bisect to well under a millisecond, then snap to the turn itself
        middle = (low + high) / 2
        low, high = (low, middle) if begun(middle) >= need else (middle, high)
    return max(lane.free_in + math.floor((high - lane.free_in) / lane.each) * lane.each
               for lane in lanes if high >= lane.free_in)


def record(moved: Moved) -> Callable[[], None] | None:
    """Keep a succeeded job's run time for its instance once the move commits (a ``jobs.on_moved`` hook)."""
    if (moved.came_from != JobStatus.RUNNING or moved.to != JobStatus.SUCCEEDED or not moved.instance
            or moved.started_at is None or moved.finished_at is None):
        return None
    seconds = max(0.0, (aware(moved.finished_at) - aware(moved.started_at)).total_seconds())
    key, entry = TIMES + moved.instance, f"{moved.template or ''}\t{seconds:.3f}"

    def not_kept(exc: Exception) -> None:
        logger.warning("run time of %s not kept, Redis is unreachable: %s", moved.job_id, exc)

    def keep() -> None:  # with the move's other writes (comfyq.db.piped)
        piped.write(get_redis(), lambda pipe: pipe.lpush(key, entry).ltrim(key, 0, RECENT - 1).expire(key, KEEP),
                    not_kept)
    return keep


class Estimator:
    """Estimate start times against one snapshot of the fleet (cheap to ask many times)."""

    def __init__(self) -> None:
        self.lanes: dict[str, list[Lane]] = {}
        self.now = time.time()
        instances = current_app.config["INSTANCES"]
        r = get_redis()
        pipe = r.pipeline(transaction=False)
        for name in instances:
            pipe.exists(PRESENCE_KEY.format(name))
            pipe.get(RUNNING_KEY.format(name))
            pipe.lrange(TIMES + name, 0, -1)
        answers = pipe.execute()
        self.online: dict[str, str | None] = {}
        self.times: dict[str, list[tuple[str, float]]] = {}
        for n, name in enumerate(instances):
            alive, running, kept = answers[3 * n: 3 * n + 3]
            if alive:
                self.online[name] = running.decode() if running else None
            self.times[name] = [_entry(raw) for raw in kept]
        everywhere = [s for times in self.times.values() for _, s in times]
        self.fleet_mean = fmean(everywhere) if everywhere else None
        running_ids = [job for job in self.online.values() if job]
        self.running = {row.id: (row.template, row.started_at) for row in db.session.execute(
            select(Job.id, Job.template, Job.started_at).where(
                Job.id.in_(running_ids), Job.status == JobStatus.RUNNING.value))} if running_ids else {}

    def lanes_for(self, queue: str) -> list[Lane]:
        """Return the lanes of the live instances that take jobs from ``queue``."""
        found = self.lanes.get(queue)
        if found is None:
            instances = current_app.config["INSTANCES"]
            found = self.lanes[queue] = [lane for name in self.online
                                         if queue == SHARED_QUEUE or queue in instances[name].queues()
                                         for lane in [self._lane(name)] if lane is not None]
        return found

    def _lane(self, name: str) -> Lane | None:
        """Return one live instance's lane, or None when nothing tells how long its jobs take."""
        times = self.times[name]
        each = fmean(s for _, s in times) if times else self.fleet_mean
        if each is None:
            return None
        free_in = 0.0
        job = self.online[name]
        if job in self.running:
            template, started = self.running[job]
            same = [s for t, s in times if t == (template or "")]
            expected = fmean(same) if same else each
            free_in = max(0.0, expected - (self.now - aware(started).timestamp())) if started else expected
        return Lane(free_in, max(each, SHORTEST))

    def start(self, queue: str, ahead: int | None) -> datetime | None:
        """Return when a job with ``ahead`` jobs before it in ``queue`` should start, or None."""
        if ahead is None:
            return None
        seconds = starts_in(ahead, self.lanes_for(queue))
        if seconds is None:
            return None
        return datetime.fromtimestamp(self.now, timezone.utc) + timedelta(seconds=seconds)


def _entry(raw: bytes) -> tuple[str, float]:
    """Parse one kept run time: (template, seconds)."""
    template, _, seconds = raw.decode().partition("\t")
    return template, float(seconds)


def snapshot() -> Estimator | None:
    """Return an estimator on the fleet as it is now, or None if Redis cannot tell (estimates are best effort)."""
    try:
        return Estimator()
    except (redis.RedisError, OSError) as exc:
        logger.warning("no start estimates, Redis is unreachable: %s", exc)
        return None


def estimated_start(job: Job, ahead: int | None) -> datetime | None:
    """Return when ``job``, with ``ahead`` jobs before it, should start, or None."""
    if ahead is None:
        return None
    estimator = snapshot()
    return estimator.start(job.queue, ahead) if estimator else None
