"""Count and observe into Redis, now or when the caller's database transaction commits.

A metric is one Redis hash, ``comfyq:metrics:<name>``. A counter's field is the
JSON list of its label values; a histogram's fields add what each counts: a
bucket's upper bound (observations that fell in that bucket alone; the count
is their total) and ``sum``. HINCRBY and HINCRBYFLOAT are atomic, so any number of processes on
any number of hosts add to the same totals. A Redis outage loses the counts it
hides and never fails the work being counted.
"""
from __future__ import annotations

import json
import logging
from typing import NamedTuple

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from ..db import piped
from ..db.extensions import db, get_redis
from .catalogue import Metric

logger = logging.getLogger(__name__)
KEY = "comfyq:metrics:{}"
PENDING = "comfyq.metrics.pending"  # the session's info key: increments waiting for its commit


class Increment(NamedTuple):
    """One addition to one field of a metric's hash."""

    key: str
    field: str
    amount: int | float  # an int adds with HINCRBY, a float (a histogram's sum) with HINCRBYFLOAT


def _values(metric: Metric, labels: dict[str, str]) -> list[str]:
    """Return the label values in the metric's declared order; refuse missing or unknown labels."""
    if set(labels) != set(metric.labels):
        raise ValueError(f"{metric.name} takes labels {metric.labels}, not {tuple(labels)}")
    return [str(labels[name]) for name in metric.labels]


def bucket_of(metric: Metric, value: float) -> str:
    """Return the field of the bucket ``value`` falls in (its smallest upper bound at or above it)."""
    return next((repr(bound) for bound in metric.buckets if value <= bound), "+Inf")


def increments(metric: Metric, amount: int = 1, **labels: str) -> list[Increment]:
    """Return what adds ``amount`` to a counter."""
    return [Increment(KEY.format(metric.name), json.dumps(_values(metric, labels)), amount)]


def observations(metric: Metric, value: float, **labels: str) -> list[Increment]:
    """Return what records one observation of ``value`` in a histogram."""
    values, key = _values(metric, labels), KEY.format(metric.name)
    return [Increment(key, json.dumps([*values, part]), amount)
            for part, amount in ((bucket_of(metric, value), 1), ("sum", float(value)))]


def record(r: redis.Redis, items: list[Increment]) -> None:
    """Apply increments in one round trip; log, never raise, when Redis is unreachable."""
    if not items:
        return
    def build(pipe: redis.client.Pipeline) -> None:
        for item in items:
            if isinstance(item.amount, int):
                pipe.hincrby(item.key, item.field, item.amount)
            else:
                pipe.hincrbyfloat(item.key, item.field, item.amount)

    def lost(exc: Exception) -> None:
        logger.warning("metrics: %d increments lost, Redis is unreachable: %s", len(items), exc)
    piped.write(r, build, lost)  # after a move's commit, with its other writes (comfyq.db.piped)


def count(metric: Metric, amount: int = 1, **labels: str) -> None:
    """Add ``amount`` to a counter now."""
    record(get_redis(), increments(metric, amount, **labels))


def observe(metric: Metric, value: float, **labels: str) -> None:
    """Record one observation of ``value`` in a histogram now."""
    record(get_redis(), observations(metric, value, **labels))


def count_on_commit(metric: Metric, amount: int = 1, **labels: str) -> None:
    """Add ``amount`` to a counter when the current transaction commits (nothing if it rolls back)."""
    db.session().info.setdefault(PENDING, []).extend(increments(metric, amount, **labels))


@event.listens_for(Session, "after_commit")
def _flush(session: Session) -> None:
    """Record what the committed transaction counted."""
    pending = session.info.pop(PENDING, None)
    if pending:
        record(get_redis(), pending)


@event.listens_for(Session, "after_transaction_end")
def _drop(session: Session, transaction: SessionTransaction) -> None:
    """Forget what a transaction that ended without a commit counted (a rollback, a close)."""
    if transaction.parent is None:  # after_commit, which runs first, took what a commit counted
        session.info.pop(PENDING, None)
