"""Fair-share admission: which pending jobs enter the broker queues, and when.

A job is admitted (``pending → queued``, and only then sent to Celery) while
its owner has fewer than ``max_running`` jobs queued or running, and all users
together fewer than ``MAX_ADMITTED``. Every decision starts by updating the one
``admission`` row, so decisions happen one at a time on SQLite and PostgreSQL
alike and no cap is ever passed. When slots are scarce, the user with the
fewest admitted jobs goes first, then the one whose pending job is oldest.

A job's end admits in the ending transaction itself (a ``jobs.on_moved``
hook), so between decisions this always holds: every user with pending jobs
is at their own cap, or the global cap is full. Hence a submission, a raised
limit, or an end while the global cap had room to spare can only make room for
one user; only an end that frees the single global slot opens it to everyone.
"""
from __future__ import annotations

import heapq
import logging
from datetime import datetime
from typing import Callable, Iterable

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm.attributes import set_committed_value

from ..events import announcer
from ..jobs import broker
from ..db.extensions import db
from ..jobs.machine import TERMINAL, JobStatus, Moved
from ..accounts.limits import ADMITTED_STATUSES, limits_for
from ..db.models import AdmissionLock, Job, User

logger = logging.getLogger(__name__)


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


def lock() -> None:
    """Wait for the admission row: on SQLite this takes the write lock, on PostgreSQL the row lock."""
    taken = db.session.execute(update(AdmissionLock).where(AdmissionLock.id == 1)
                               .values(turns=AdmissionLock.turns + 1))
    if taken.rowcount != 1:
        raise RuntimeError("the admission row is missing: the database was not made by comfyq's migrations")


def allocate(room: dict[str, int], admitted: dict[str, int], oldest: dict[str, datetime],
             free: int | None) -> dict[str, int]:
    """Share ``free`` slots (None: no global cap) among users with ``room``, one slot at a time, fairest first."""
    if free is None:
        return {user: n for user, n in room.items() if n > 0}
    grants: dict[str, int] = {}
    heap = [(admitted.get(user, 0), oldest[user], user) for user, n in room.items() if n > 0]
    heapq.heapify(heap)
    while free > 0 and heap:
        held, first, user = heapq.heappop(heap)
        grants[user] = grants.get(user, 0) + 1
        free -= 1
        if grants[user] < room[user]:
            heapq.heappush(heap, (held + 1, first, user))
    return grants


def admit(user_id: str | None = None, freed: bool = False) -> list[Job]:
    """Queue the pending jobs of ``user_id`` (or everyone's) that the caps allow; return them, uncommitted.

    ``freed``: a job of ``user_id`` just ended; if that freed the one global slot, everyone may take it.
    """
    config = current_app.config
    lock()
    admitted = {user: n for user, n in db.session.execute(
        select(Job.user_id, func.count()).where(Job.status.in_(ADMITTED_STATUSES)).group_by(Job.user_id))}
    cap = int(config["MAX_ADMITTED"])
    free = cap - sum(admitted.values()) if cap else None
    if free is not None and free <= 0:
        return []
    if user_id is not None and not (freed and free == 1):
        user = db.session.get(User, user_id)
        room = limits_for(user, config).max_running - admitted.get(user_id, 0) if user else 0
        # Only this user can have room: take their oldest pending jobs, however long their backlog.
        return _queue(user_id, min(room, free) if free is not None else room)
    oldest, pending = {}, {}
    for owner, first, number in db.session.execute(
            select(Job.user_id, func.min(Job.created_at), func.count()).where(
                Job.status == JobStatus.PENDING.value, Job.user_id.is_not(None)).group_by(Job.user_id)):
        oldest[owner], pending[owner] = first, number
    users = db.session.scalars(select(User).where(User.id.in_(pending))) if pending else []
    room = {u.id: min(pending[u.id], limits_for(u, config).max_running - admitted.get(u.id, 0)) for u in users}
    return [job for owner, number in allocate(room, admitted, oldest, free).items() for job in _queue(owner, number)]


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
    """Announce admitted jobs (they join their queues' position sets), send them; return those whose send failed."""
    announcer.admitted(jobs)
    return dispatch(jobs)


def admit_and_dispatch(user_id: str | None = None) -> list[str]:
    """Admit what the caps allow in a transaction of its own, then send the admitted jobs; return their ids."""
    try:
        jobs = admit(user_id)
        db.session.commit()
    except SQLAlchemyError as exc:  # the next job end or reconciler pass admits them
        db.session.rollback()
        logger.error("admission failed: %s", exc)
        return []
    send(jobs)  # a failed send leaves the job queued: the reconciler re-enqueues it
    return [job.id for job in jobs]


def on_moved(moved: Moved) -> Callable[[], None] | None:
    """Admit, in an ending job's own transaction, what its end makes room for; send it after the commit."""
    if moved.to not in TERMINAL or moved.came_from not in (JobStatus.QUEUED, JobStatus.RUNNING):
        return None
    jobs = admit(moved.user_id, freed=True)

    def after() -> None:
        send(jobs)  # a failed send leaves the job queued: the reconciler re-enqueues it
    return after if jobs else None
