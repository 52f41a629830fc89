"""Timestamps: UTC everywhere, aware in Python, ISO 8601 with ``+00:00`` on the wire.

Every datetime column is a :class:`UTCDateTime`, so whatever database is behind
(SQLite hands back naive datetimes, PostgreSQL ones in its session's zone), a
datetime read from a row is aware and in UTC; :func:`isoformat` is the one way
a timestamp is written out (API, webhooks, CLI).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(timezone.utc)


def aware(moment: datetime) -> datetime:
    """Return ``moment`` in UTC, reading a naive one as UTC already."""
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def isoformat(moment: datetime) -> str:
    """Return ``moment`` as ISO 8601 in UTC with microseconds: ``2026-12-04T14:30:52.378047+00:00``."""
    return aware(moment).isoformat(timespec="microseconds")


class UTCDateTime(TypeDecorator[datetime]):
    """A ``TIMESTAMP WITH TIME ZONE`` column whose values go in and come out as aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC (SQLite keeps no zone, so any other offset would be lost)."""
        return aware(value) if value is not None else None

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return what was stored as an aware UTC datetime."""
        return aware(value) if value is not None else None
