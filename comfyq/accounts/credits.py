"""Credits: an integer balance per user and the ledger whose entries always sum to it.

Every change of a balance writes one ledger entry in the same transaction:
``grant`` and ``adjustment`` by admins, ``debit`` per job at submission,
``refund`` per job that fails, times out or is cancelled before it ran. A job has at most
one entry of each kind (a unique constraint), so a retried handler can never
refund twice. The refund is made by ``refund_on_end``, a hook the app's wiring
connects to the job state machine, so it commits with the move that ends the
job. Only the functions here touch ``users.balance``.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Protocol

from sqlalchemy import Insert, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.attributes import set_committed_value

from ..errors import Conflict, InvalidRequest, PaymentRequired
from ..db.extensions import db
from ..db.models import Job, LedgerEntry, User
from ..metrics.catalogue import CREDITS_DEBITED, CREDITS_REFUNDED
from ..metrics.recorder import count_on_commit

MAX_BALANCE = 10**15


def is_metered(user: User, config: Mapping[str, Any]) -> bool:
    """Return whether ``user`` pays for jobs (roles in ``FREE_ROLES`` do not)."""
    return user.role not in config["FREE_ROLES"]


def reserve(user: User, cost: int) -> None:
    """Take ``cost`` from the balance if it covers it, holding the user's row until commit; else answer 402.

    The conditional UPDATE is the whole guard: concurrent submissions queue on
    the row, and each sees the balance the previous one left.
    """
    taken = db.session.execute(
        update(User).where(User.id == user.id, User.balance >= cost).values(balance=User.balance - cost)
        .returning(User.balance).execution_options(synchronize_session=False)).first()
    if taken is None:
        balance = db.session.scalar(select(User.balance).where(User.id == user.id))
        db.session.rollback()
        raise PaymentRequired(f"this costs {cost} credits and your balance is {balance}; ask an admin for "
                              "credits, or price jobs first with POST /v1/jobs:estimate",
                              {"balance": balance, "cost": cost})


def record_debits(user: User, jobs: Iterable[Job]) -> None:
    """Insert the debit entry of each costly, already flushed job in one statement (the balance was reserved)."""
    rows = [{"user_id": user.id, "kind": "debit", "amount": -job.cost, "job_id": job.id} for job in jobs if job.cost]
    if rows:
        db.session.execute(insert(LedgerEntry), rows)  # no ORM objects: a batch's hundred entries in one INSERT
        count_on_commit(CREDITS_DEBITED, sum(-row["amount"] for row in rows))


def refund_due(to: str, came_from: str) -> bool:
    """Return whether a job moving from ``came_from`` to ``to`` gets its credits back.

    Every failure is refunded, a graph the instance refused included: comfyq
    checks raw workflows against the instances' catalogues before taking
    credits, so a refusal that gets past it is one comfyq could not foresee.
    """
    if to in ("failed", "timed_out"):
        return True
    # A job cancelled while running held a GPU; one cancelled before never did.
    return to == "cancelled" and came_from != "running"


class Move(Protocol):
    """What the refund reads of a job's transition (``comfyq.jobs.machine.Moved`` has it)."""

    @property
    def job_id(self) -> str:
        """Return the id of the job that moved."""

    @property
    def came_from(self) -> str:
        """Return the state it left."""

    @property
    def to(self) -> str:
        """Return the state it entered."""


def refund_on_end(moved: Move) -> None:
    """Refund, in the move's transaction, an end that earns it (a ``jobs.on_moved`` hook); never twice."""
    if refund_due(moved.to, moved.came_from):
        refund(moved.job_id, note=f"the job ended {moved.to}")


def _insert_once(values: dict[str, Any]) -> Insert:
    """Return an INSERT of a ledger entry that does nothing if the job already has one of that kind."""
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    return (dialect.insert(LedgerEntry).values(**values).on_conflict_do_nothing(index_elements=["job_id", "kind"])
            .returning(LedgerEntry.id))


def refund(job_id: str, note: str | None = None) -> int:
    """Give back a job's debit unless it was given back already; return the credits returned.

    Runs in the caller's transaction, so a refund commits with the job's final state.
    """
    debit = db.session.execute(select(LedgerEntry.user_id, LedgerEntry.amount).where(
        LedgerEntry.job_id == job_id, LedgerEntry.kind == "debit")).first()
    if debit is None:  # free, or cost nothing
        return 0
    inserted = db.session.execute(_insert_once(
        {"user_id": debit.user_id, "kind": "refund", "amount": -debit.amount, "job_id": job_id, "note": note}))
    if inserted.first() is None:  # refunded already (asked by RETURNING: PostgreSQL gives no rowcount here)
        return 0
    db.session.execute(update(User).where(User.id == debit.user_id).values(balance=User.balance - debit.amount)
                       .execution_options(synchronize_session=False))
    count_on_commit(CREDITS_REFUNDED, -debit.amount)
    return -debit.amount


def change(user: User, amount: int, kind: str, note: str | None, actor: User | None) -> LedgerEntry:
    """Grant credits (positive) or adjust a balance (either sign, never below zero); commit and return the entry."""
    if kind not in ("grant", "adjustment") or amount == 0 or (kind == "grant" and amount < 0):
        raise InvalidRequest("a grant adds a positive number of credits; an adjustment adds or removes a "
                             "non-zero number", {"json": {"amount": ["not a valid amount for this kind"]}})
    if note is not None and len(note) > 255:
        raise InvalidRequest("the note is longer than 255 characters; shorten it", {"json": {"note": ["too long"]}})
    moved = db.session.execute(
        update(User).where(User.id == user.id, User.balance + amount >= 0, User.balance + amount <= MAX_BALANCE)
        .values(balance=User.balance + amount).returning(User.balance)
        .execution_options(synchronize_session=False)).first()
    if moved is None:
        db.session.rollback()
        held = balance_of(user.id)
        if amount > 0:
            raise Conflict(f"{user.name} has {held} credits; adding {amount} would pass the most a balance may "
                           f"hold ({MAX_BALANCE})")
        raise Conflict(f"{user.name} has {held} credits; removing {-amount} would leave the balance below zero")
    entry = LedgerEntry(user_id=user.id, kind=kind, amount=amount, note=note, actor_id=actor.id if actor else None)
    db.session.add(entry)
    db.session.commit()
    set_committed_value(user, "balance", moved.balance)  # known now; not a change to write back later
    return entry


def balance_of(user_id: str) -> int:
    """Return a user's balance as stored now."""
    return db.session.scalar(select(User.balance).where(User.id == user_id)) or 0


def recent(user: User, limit: int = 20) -> list[LedgerEntry]:
    """Return a user's latest ledger entries, newest first."""
    return list(db.session.scalars(select(LedgerEntry).where(LedgerEntry.user_id == user.id)
                                   .order_by(LedgerEntry.id.desc()).limit(limit)))


def page(user: User, number: int, size: int) -> tuple[list[LedgerEntry], int]:
    """Return page ``number`` (from 1) of a user's ledger, newest first, and how many entries it has in all."""
    entries = db.session.scalars(select(LedgerEntry).where(LedgerEntry.user_id == user.id)
                                 .order_by(LedgerEntry.id.desc()).offset((number - 1) * size).limit(size))
    total = db.session.scalar(select(db.func.count()).select_from(LedgerEntry)
                              .where(LedgerEntry.user_id == user.id))
    return list(entries), total or 0


def ledger_sum(user_id: str) -> int:
    """Return the sum of a user's ledger entries (equal to the balance, always)."""
    return db.session.scalar(select(db.func.coalesce(db.func.sum(LedgerEntry.amount), 0))
                             .where(LedgerEntry.user_id == user_id)) or 0
