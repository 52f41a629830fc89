"""The job state machine: guarded transitions and nothing else.

``pending → queued → running → succeeded | failed | timed_out | cancelled``

Every transition is one ``UPDATE … WHERE id = :id AND status IN (:expected)``,
so two processes can never both move the same job; ``take_over`` guards the
hand-over of a running job between workers the same way. A move commits with
what its hooks do in its transaction, and what they must do outside the
database runs after the commit. The hooks are connected in one place, the app's
wiring (comfyq.app): the refund an end earns, queue positions, the admission of
the pending jobs an end makes room for, and the announcer, which tells the move
to event streams and webhooks. This module knows none of them: it depends on
the database layer alone, and refuses to move a job in a process whose app
connected no hooks (one that would silently skip refunds and news). What
the commit and the actions write to Redis goes in one pipeline (comfyq.db.piped).
"""
from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Any, Callable, Iterable, NamedTuple

from sqlalchemy import Row, update

from ..db import piped
from ..db.extensions import db, get_redis
from ..db.models import Job, utcnow

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
    """A transition, as hooks see it before its commit."""

    job_id: str
    user_id: str | None
    queue: str
    came_from: JobStatus
    to: JobStatus
    # The job as the move left it: what the hooks tell of it, so none has to read it again.
    instance: str | None
    attempts: int
    error: dict[str, Any] | None
    webhook_url: str | None
    webhook_events: list[str] | None
    template: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime | None = None


# A hook runs in the move's transaction, in the order connected; what it returns runs after the commit.
Hook = Callable[[Moved], Callable[[], None] | None]
_hooks: list[Hook] = []


class NotWired(RuntimeError):
    """A job was to move in a process whose app connected no transition hooks."""


def on_moved(hook: Hook) -> None:
    """Run ``hook`` in every transition's transaction (connecting it twice changes nothing)."""
    if hook not in _hooks:
        _hooks.append(hook)


def is_terminal(status: str) -> bool:
    """Return whether ``status`` is final."""
    return status in TERMINAL


def transition(job_id: str, to: JobStatus, expected: Iterable[JobStatus], **fields: Any) -> bool:
    """Move a job to ``to`` if it is in one of ``expected``; return whether it moved.

    The session's pending changes (say, output rows) are committed with the move,
    or rolled back with it when the job was not in an expected state.
    """
    if not _hooks:
        raise NotWired("no transition hooks are connected: build the app with comfyq.create_app first")
    expected = tuple(expected)
    for old in expected:
        if to not in ALLOWED.get(old, ()):
            raise IllegalTransition(f"{old} → {to}")
    values = dict(fields, status=to.value)
    if to in TERMINAL:
        values.setdefault("finished_at", utcnow())
    if to is JobStatus.RUNNING:
        values.setdefault("started_at", utcnow())
    for old in expected:  # one state at a time, so the hooks know which one the job left
        row = _guarded_update(job_id, [Job.status == old.value], values)
        if row is not None:
            break
    else:
        db.session.rollback()
        return False
    moved = Moved(job_id, row.user_id, row.queue, old, to, row.instance, row.attempts,
                  row.error, row.webhook_url, row.webhook_events, row.template, row.started_at, row.finished_at,
                  row.created_at)
    try:
        after = [hook(moved) for hook in _hooks]
    except Exception:
        db.session.rollback()  # the move and what it entails commit together or not at all
        raise
    with piped.gathered(get_redis()):  # what the commit and the actions write to Redis: one round trip
        db.session.commit()
        for action in filter(None, after):
            try:
                action()
            except Exception:  # the move stands; the reconciler repairs what an action missed
                logger.exception("job %s: an action after its move to %s failed", job_id, to.value)
    return True


def _guarded_update(job_id: str, conditions: list[Any], values: dict[str, Any]) -> Row[Any] | None:
    """Update one job if ``conditions`` hold and return what hooks need of it (``Moved``), else None.

    Nothing is committed or rolled back here: the caller decides.
    """
    return db.session.execute(
        update(Job).where(Job.id == job_id, *conditions).values(**values)
        .returning(Job.user_id, Job.queue, Job.instance, Job.attempts, Job.error, Job.webhook_url,
                   Job.webhook_events, Job.template, Job.started_at, Job.finished_at, Job.created_at)
        .execution_options(synchronize_session=False)).first()


def set_started(job_id: str, at: datetime) -> None:
    """Record when a running job's prompt began to execute (a prompt placed ahead starts after its claim)."""
    db.session.execute(
        update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING.value)
        .values(started_at=at).execution_options(synchronize_session=False))
    db.session.commit()


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
        db.session.rollback()
        return False
    db.session.commit()
    return True
