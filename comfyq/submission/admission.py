"""Fair-share admission: which pending jobs enter the broker queues, and when.

A job is admitted (``pending → queued``, and only then sent to Celery) while
its owner has fewer than ``max_running`` jobs queued or running, and all users
together fewer than ``MAX_ADMITTED`` (by default two per GPU: the one running
and the one next, so the broker's FIFO is never deeper than a lookahead of one
per instance and a backlog never sits in it ahead of newcomers). Every
decision starts by updating the one ``admission`` row, so decisions happen one
at a time on SQLite and PostgreSQL alike and no cap is ever passed.

When slots are scarce they go one at a time, each to the user first in this
order (``rank``): fewest jobs held (queued or running) counting the one to be
given, per unit of weight, ``(held + 1) / weight``; then least recently served
(``users.last_served``, the admission row's ``served`` count at the user's
latest admission; never served comes first); then oldest pending job; then id.
So a lone user takes every GPU their ``max_running`` allows; equal users take
turns (round robin); a user of weight w may hold w slots before a weight-1 user
holding none loses its turn to them; and a backlog whose owner was just served
loses every tie to a newcomer.

Starvation bound: a user u with a pending job and room under ``max_running``
is passed over only by users ranked before it. Each admission of another user
v raises v's ``(held + 1) / weight`` by ``1 / w_v``; once it exceeds u's, v
goes after u, and on a tie v, served more recently, goes after u too. So v
passes u at most ``ceil(w_v (h_u + 1) / w_u)`` times, and u's next job is
admitted within ``sum over v of ceil(w_v (h_u + 1) / w_u)`` admissions: N - 1
with N equal users when u holds nothing. Each admission follows a job's end,
which the hard time limit bounds.

Order to the workers: each decision announces and sends its jobs before it
commits, while it still holds the admission row (``send``), so the broker
queues get jobs in admission order across API processes and workers.

A job's end admits in the ending transaction itself (a ``jobs.on_moved``
hook), so between decisions this always holds: every user with pending jobs
is at their own cap, or the global cap is full. Hence a submission, a raised
limit, or an end while the global cap had room to spare can only make room for
one user; only an end that frees the single global slot opens it to everyone.
When nobody has a pending job, a decision ends after taking the row and one look.
"""
from __future__ import annotations

import heapq
import logging
from datetime import datetime
from fractions import Fraction
from typing import Callable, Iterable, NamedTuple

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm.attributes import set_committed_value

from ..events import announcer
from ..jobs import broker, positions
from ..db.extensions import db
from ..jobs.machine import TERMINAL, JobStatus, Moved
from ..accounts.limits import ADMITTED_STATUSES, limits_for
from ..db.models import AdmissionLock, Job, User

logger = logging.getLogger(__name__)
PLACES = "comfyq.rotation"  # session info: the rotation places decided in this transaction, written after it


def dispatch(jobs: Iterable[Job]) -> list[Job]:
    """Send the task of each admitted job; return those whose send failed (they stay queued)."""
    failed = []
    for job in jobs:
        try:
            broker.enqueue(job)
        except broker.SEND_ERRORS as exc:
            logger.error("enqueue of %s failed: %s", job.id, exc)
            failed.append(job)
    return failed


def lock() -> int:
    """Wait for the admission row (SQLite's write lock, PostgreSQL's row lock); return its ``served`` count."""
    taken = db.session.execute(update(AdmissionLock).where(AdmissionLock.id == 1)
                               .values(turns=AdmissionLock.turns + 1).returning(AdmissionLock.served))
    served = taken.scalar()
    if served is None:
        raise RuntimeError("the admission row is missing: the database was not made by comfyq's migrations")
    return int(served)


class Standing(NamedTuple):
    """What fair share knows of one user with pending jobs."""

    held: int  # jobs queued or running now
    weight: int  # fair-share weight, at least 1
    last_served: int | None  # the served count at their latest admission; None: never served
    oldest: datetime  # their oldest pending job's creation


def rank(standing: Standing, user: str) -> tuple[Fraction, int, datetime, str]:
    """Return the sort key of a user competing for a slot: the smallest goes first."""
    return (Fraction(standing.held + 1, standing.weight),
            -1 if standing.last_served is None else standing.last_served, standing.oldest, user)


def allocate(room: dict[str, int], standings: dict[str, Standing], free: int | None,
             served: int = 0) -> list[str]:
    """Give ``free`` slots (None: no global cap) to users with ``room``, one at a time, in fair-share order.

    Return the users served, one entry per slot, in the order they were served;
    ``served`` is the admission row's count before, each slot counting one more.
    """
    if free is None:
        return [user for user, n in sorted(room.items(), key=lambda item: rank(standings[item[0]], item[0]))
                for _ in range(n)]
    order: list[str] = []
    heap = [(rank(standings[user], user), user) for user, n in room.items() if n > 0]
    heapq.heapify(heap)
    grants: dict[str, int] = {}
    while free > 0 and heap:
        _, user = heapq.heappop(heap)
        order.append(user)
        grants[user] = grants.get(user, 0) + 1
        served += 1
        free -= 1
        if grants[user] < room[user]:
            now = standings[user]._replace(held=standings[user].held + grants[user], last_served=served)
            heapq.heappush(heap, (rank(now, user), user))
    return order


def admit(user_id: str | None = None, freed: bool = False, added: int = 0) -> list[Job]:
    """Queue the pending jobs of ``user_id`` (or everyone's) that the caps allow; return them, uncommitted.

    ``freed``: a job of ``user_id`` just ended; if that freed the one global slot, everyone may take it.
    ``added``: how many pending jobs of ``user_id`` this transaction just made (a submission).
    """
    config = current_app.config
    served = lock()
    if not added and not _anyone_pending():  # the common end of a job when nobody waits: nothing to decide
        if user_id is not None:
            _place(user_id, None)
        return []
    admitted = {user: n for user, n in db.session.execute(
        select(Job.user_id, func.count()).where(Job.status.in_(ADMITTED_STATUSES)).group_by(Job.user_id))}
    cap = int(config["MAX_ADMITTED"])
    free = cap - sum(admitted.values()) if cap else None
    if user_id is not None and (free is not None and free <= 0 or not (freed and free == 1)):
        user = db.session.get(User, user_id)
        room = limits_for(user, config).max_running - admitted.get(user_id, 0) if user else 0
        # Only this user can have room: take their oldest pending jobs, however long their backlog.
        jobs = _queue(user_id, min(room, free) if free is not None else room)
        _served(served, [job.user_id for job in jobs], jobs)
        if user is not None:
            _place_alone(user, served + len(jobs) if jobs else user.last_served, still_pending=added > len(jobs))
        return jobs
    if free is not None and free <= 0:
        return []
    oldest, pending = {}, {}
    for owner, first, number in db.session.execute(
            select(Job.user_id, func.min(Job.created_at), func.count()).where(
                Job.status == JobStatus.PENDING.value, Job.user_id.is_not(None)).group_by(Job.user_id)):
        oldest[owner], pending[owner] = first, number
    users = db.session.scalars(select(User).where(User.id.in_(pending))
                               .execution_options(populate_existing=True)) if pending else []
    room, standings = {}, {}
    for u in users:
        limits = limits_for(u, config)
        room[u.id] = min(pending[u.id], limits.max_running - admitted.get(u.id, 0))
        standings[u.id] = Standing(admitted.get(u.id, 0), limits.weight, u.last_served, oldest[u.id])
    order = allocate(room, standings, free, served)
    queued = {owner: iter(_queue(owner, order.count(owner))) for owner in set(order)}
    # The jobs in the order their owners were served: the order they are sent in.
    jobs = [job for job in (next(queued[owner], None) for owner in order) if job is not None]
    _served(served, [job.user_id for job in jobs], jobs)
    last = {job.user_id: n for n, job in enumerate(jobs, start=served + 1)}
    for owner, standing in standings.items():
        given = sum(1 for job in jobs if job.user_id == owner)
        _place(owner, None if pending[owner] <= given else (positions.rotation_score(
            last.get(owner, standing.last_served), standing.oldest), standing.weight))
    return jobs


def _anyone_pending() -> bool:
    """Return whether any job is pending (read under the admission row, so no submission slips past it)."""
    return db.session.scalar(select(Job.id).where(Job.status == JobStatus.PENDING.value).limit(1)) is not None


def _place(user_id: str, place: tuple[float, int] | None) -> None:
    """Note a user's new place in the fair-share rotation (None: no pending jobs), to write after the commit."""
    db.session.info.setdefault(PLACES, {})[user_id] = place


def _place_alone(user: User, last_served: int | None, still_pending: bool = False) -> None:
    """Note the rotation place of a user whose jobs alone a decision looked at.

    ``still_pending``: the user is known to keep a pending job (a submission added more than was admitted).
    """
    weight = limits_for(user, current_app.config).weight
    if still_pending and last_served is not None:  # a served user's score is their last admission alone: no query
        _place(user.id, (float(last_served), weight))
        return
    first, number = db.session.execute(select(func.min(Job.created_at), func.count()).where(
        Job.user_id == user.id, Job.status == JobStatus.PENDING.value)).one()
    _place(user.id, (positions.rotation_score(last_served, first), weight) if number else None)


def _served(served: int, owners: list[str | None], jobs: list[Job]) -> None:
    """Count the admissions just made on the admission row and stamp each owner's ``last_served``."""
    if not jobs:
        return
    latest: dict[str, int] = {}
    for n, owner in enumerate(owners, start=served + 1):
        if owner is not None:
            latest[owner] = n
    db.session.execute(update(AdmissionLock).where(AdmissionLock.id == 1).values(served=served + len(owners)))
    for owner, n in latest.items():
        db.session.execute(update(User).where(User.id == owner).values(last_served=n))


def _queue(user_id: str, number: int) -> list[Job]:
    """Move up to ``number`` of the user's oldest pending jobs to queued; return those moved."""
    if number <= 0:
        return []
    # SKIP LOCKED (PostgreSQL): a job being cancelled right now is not waited for, so no lock cycle.
    chosen = list(db.session.scalars(
        select(Job).where(Job.user_id == user_id, Job.status == JobStatus.PENDING.value)
        .order_by(Job.created_at, Job.id).limit(number).with_for_update(skip_locked=True)))
    if not chosen:
        return []
    moved = set(db.session.scalars(
        update(Job).where(Job.id.in_([j.id for j in chosen]), Job.status == JobStatus.PENDING.value)
        .values(status=JobStatus.QUEUED.value).returning(Job.id).execution_options(synchronize_session=False)))
    for job in chosen:
        if job.id in moved:
            set_committed_value(job, "status", JobStatus.QUEUED.value)
    return [job for job in chosen if job.id in moved]


def send(jobs: list[Job]) -> list[Job]:
    """Announce admitted jobs and send their tasks, still holding the admission lock; return those whose send failed.

    Called by every decision before its commit, so the broker gets the jobs of
    one decision after those of the decision before, whichever process made
    either: workers receive jobs in the order they were admitted. A worker that
    gets a job whose admission is not yet committed waits for the commit (and
    drops the message if the decision was rolled back; comfyq.worker.runner).
    The users' rotation places the decision noted are written first.
    """
    positions.rotate(db.session.info.pop(PLACES, {}))
    announcer.admitted(jobs)
    return dispatch(jobs)


def admit_and_dispatch(user_id: str | None = None) -> list[str]:
    """Admit what the caps allow and send the admitted jobs, in a transaction of its own; return their ids."""
    jobs: list[Job] = []
    try:
        jobs = admit(user_id)
        send(jobs)  # a failed send leaves the job queued: the reconciler re-enqueues it
        db.session.commit()
    except SQLAlchemyError as exc:  # the next job end or reconciler pass admits them
        told = [(job.id, job.user_id, job.queue, job.created_at) for job in jobs]  # before the rollback expires them
        db.session.rollback()
        db.session.info.pop(PLACES, None)
        logger.error("admission failed: %s", exc)
        if told:  # their tasks were sent: workers drop them, as no commit comes; their streams hear it here
            announcer.admission_undone(told)
        return []
    return [job.id for job in jobs]


def on_moved(moved: Moved) -> Callable[[], None] | None:
    """Admit, in an ending job's own transaction, what its end makes room for, and send it before that commits."""
    if moved.to not in TERMINAL or moved.came_from not in (JobStatus.QUEUED, JobStatus.RUNNING):
        return None
    send(admit(moved.user_id, freed=True))  # a failed send leaves the job queued: the reconciler re-enqueues it
    return None
