"""The job state machine: guarded transitions and nothing else.

``pending → queued → running → succeeded | failed | timed_out | cancelled``

Every transition is one ``UPDATE … WHERE id = :id AND status IN (:expected)``,
so two processes can never both move the same job; ``take_over`` guards the
hand-over of a running job between workers the same way. An end that earns a
refund commits with it; listeners (admission, queue positions) hear of each
move after its commit.
"""
from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any, Callable, Iterable, NamedTuple

from sqlalchemy import Row, update

from . import credits
from .extensions import db
from .models import Job, utcnow

logger = logging.getLogger(__name__)


class JobStatus(StrEnum):
    """Every state a job can be in."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.CANCELLED})

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}),
    # running → running: a redelivered task takes the job over on another instance.
    # running → queued: the instance was unreachable and the job goes back to the queue.
    JobStatus.RUNNING: frozenset({JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.SUCCEEDED,
                                  JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.CANCELLED}),
}


class IllegalTransition(ValueError):
    """The state machine has no edge between the two states."""


class Moved(NamedTuple):
    """A committed transition, as listeners hear of it."""

    job_id: str
    user_id: str | None
    queue: str
    to: JobStatus
    came_from: tuple[JobStatus, ...]


_listeners: list[Callable[[Moved], None]] = []


def on_moved(listener: Callable[[Moved], None]) -> None:
    """Call ``listener`` after every committed transition (registering twice changes nothing)."""
    if listener not in _listeners:
        _listeners.append(listener)


def is_terminal(status: str) -> bool:
    """Return whether ``status`` is final."""
    return status in TERMINAL


def transition(job_id: str, to: JobStatus, expected: Iterable[JobStatus], **fields: Any) -> bool:
    """Move a job to ``to`` if it is in one of ``expected``; return whether it moved.

    The session's pending changes (say, output rows) are committed with the move,
    or rolled back with it when the job was not in an expected state.
    """
    expected = tuple(expected)
    for old in expected:
        if to not in ALLOWED.get(old, ()):
            raise IllegalTransition(f"{old} → {to}")
    values = dict(fields, status=to.value)
    if to in TERMINAL:
        values.setdefault("finished_at", utcnow())
    if to is JobStatus.RUNNING:
        values.setdefault("started_at", utcnow())
    row = _guarded_update(job_id, [Job.status.in_([s.value for s in expected])], values)
    if row is None:
        return False
    if to in TERMINAL and credits.refund_due(to, expected, fields.get("error")):
        credits.refund(job_id, note=f"the job ended {to.value}")
    db.session.commit()
    moved = Moved(job_id, row.user_id, row.queue, to, expected)
    for listener in _listeners:
        try:
            listener(moved)
        except Exception:  # the move stands; the reconciler repairs what a listener missed
            logger.exception("job %s: a listener of its move to %s failed", job_id, to.value)
    return True


def _guarded_update(job_id: str, conditions: list[Any], values: dict[str, Any]) -> Row[Any] | None:
    """Update one job if ``conditions`` hold and return its owner and queue; else roll back and return None.

    The session's pending changes stay uncommitted: the caller commits them with the update.
    """
    row = db.session.execute(
        update(Job).where(Job.id == job_id, *conditions).values(**values)
        .returning(Job.user_id, Job.queue).execution_options(synchronize_session=False)).first()
    if row is None:
        db.session.rollback()
    return row


def set_progress(job_id: str, progress: dict[str, Any]) -> None:
    """Record the latest progress of a running job (no state change)."""
    db.session.execute(
        update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING.value)
        .values(progress=progress).execution_options(synchronize_session=False))
    db.session.commit()


def take_over(job_id: str, old_worker: str | None, new_worker: str | None) -> bool:
    """Make ``new_worker`` the one running job ``job_id`` if ``old_worker`` still is; return whether it did."""
    owner = Job.worker.is_(None) if old_worker is None else Job.worker == old_worker
    if _guarded_update(job_id, [Job.status == JobStatus.RUNNING.value, owner], {"worker": new_worker}) is None:
        return False
    db.session.commit()
    return True
