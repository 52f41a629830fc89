"""What a job's move counts: its end per template, its queue wait and its run time per template and instance."""
from __future__ import annotations

from datetime import datetime
from typing import Callable, Protocol

from ..db.extensions import get_redis
from .catalogue import JOBS_ENDED, QUEUE_WAIT, RUN_TIME
from .recorder import Increment, increments, observations, record

ENDED = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
RAW = "raw"  # the template label of a job that ran a raw workflow
NO_INSTANCE = "none"  # the instance label of a job that never ran


class Move(Protocol):
    """What the metrics read of a job's transition (``comfyq.jobs.machine.Moved`` has it)."""

    @property
    def came_from(self) -> str:
        """Return the state it left."""

    @property
    def to(self) -> str:
        """Return the state it entered."""

    @property
    def template(self) -> str | None:
        """Return the template it was filled from, if any."""

    @property
    def instance(self) -> str | None:
        """Return the instance it ran on, if any."""

    @property
    def created_at(self) -> datetime | None:
        """Return when it was submitted."""

    @property
    def started_at(self) -> datetime | None:
        """Return when its run started."""

    @property
    def finished_at(self) -> datetime | None:
        """Return when it ended."""


def measured(moved: Move) -> list[Increment]:
    """Return what a move adds to the job metrics."""
    labels = {"template": moved.template or RAW, "instance": moved.instance or NO_INSTANCE}
    items: list[Increment] = []
    if moved.to == "running" and moved.came_from == "queued" and moved.created_at and moved.started_at:
        items += observations(QUEUE_WAIT, _seconds(moved.created_at, moved.started_at), **labels)
    if moved.to in ENDED:
        items += increments(JOBS_ENDED, state=str(moved.to), template=labels["template"])
        if moved.came_from == "running" and moved.started_at and moved.finished_at:
            items += observations(RUN_TIME, _seconds(moved.started_at, moved.finished_at), **labels)
    return items


def on_moved(moved: Move) -> Callable[[], None] | None:
    """Count a move once it commits (a ``jobs.on_moved`` hook)."""
    items = measured(moved)
    if not items:
        return None
    r = get_redis()
    return lambda: record(r, items)


def _seconds(since: datetime, until: datetime) -> float:
    """Return the seconds between two moments, never below zero (clocks of two hosts may disagree)."""
    return max(0.0, (until - since).total_seconds())
