"""The job state machine: guarded transitions and nothing else.

``pending → queued → running → succeeded | failed | timed_out | cancelled``

Every transition is one ``UPDATE … WHERE id = :id AND status IN (:expected)``,
so two processes can never both move the same job; ``take_over`` guards the
hand-over of a running job between workers the same way.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any, Iterable

from sqlalchemy import update

from .extensions import db
from .models import Job, utcnow


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
    return _guarded_update(job_id, [Job.status.in_([s.value for s in expected])], values)


def _guarded_update(job_id: str, conditions: list[Any], values: dict[str, Any]) -> bool:
    """Update one job if ``conditions`` hold, committing the session with it; return whether it did."""
    result = db.session.execute(
        update(Job).where(Job.id == job_id, *conditions).values(**values)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.rollback()
        return False
    db.session.commit()
    return True


def set_progress(job_id: str, progress: dict[str, Any]) -> None:
    """Record the latest progress of a running job (no state change)."""
    db.session.execute(
        update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING.value)
        .values(progress=progress).execution_options(synchronize_session=False))
    db.session.commit()


def take_over(job_id: str, old_worker: str | None, new_worker: str | None) -> bool:
    """Make ``new_worker`` the one running job ``job_id`` if ``old_worker`` still is; return whether it did."""
    owner = Job.worker.is_(None) if old_worker is None else Job.worker == old_worker
    return _guarded_update(job_id, [Job.status == JobStatus.RUNNING.value, owner], {"worker": new_worker})
