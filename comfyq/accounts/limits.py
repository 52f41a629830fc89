"""Per-user limits: how many jobs may run and wait at once, and how fast a user may submit.

Each limit comes from the first of: the user's own setting (admins set it),
the role's (``COMFYQ_ROLE_LIMITS``), the global default (``COMFYQ_MAX_*``).
For waiting jobs and the submission rate, 0 means no limit.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from sqlalchemy import func, select

from ..errors import InvalidRequest, TooManyRequests
from ..db.extensions import db
from ..db.models import Job, User

FIELDS = ("max_running", "max_waiting", "rate_per_minute", "weight")
GLOBAL_KEYS = {"max_running": "MAX_RUNNING_PER_USER", "max_waiting": "MAX_WAITING_PER_USER",
               "rate_per_minute": "SUBMIT_RATE_PER_MINUTE"}
WAITING_STATUSES = ("pending", "queued")
ADMITTED_STATUSES = ("queued", "running")


@dataclass(frozen=True)
class Limits:
    """The limits that apply to one user."""

    max_running: int  # jobs queued or running at once; more wait as pending
    max_waiting: int  # jobs pending or queued at once; more are refused (429)
    rate_per_minute: int  # submissions per minute; more are refused (429)
    weight: int = 1  # fair-share weight: a user of weight 2 holds two GPU slots for every one of a weight 1


def resolve(user: User, config: Mapping[str, Any]) -> tuple[Limits, dict[str, str]]:
    """Return the limits of ``user`` and, for each, where it came from (user, role, global or default)."""
    role = config["ROLE_LIMITS"].get(user.role, {})
    values: dict[str, int] = {}
    sources: dict[str, str] = {}
    for name in FIELDS:
        own = getattr(user, name)
        if own is not None:
            values[name], sources[name] = own, "user"
        elif name in role:
            values[name], sources[name] = role[name], "role"
        elif name in GLOBAL_KEYS:
            values[name], sources[name] = int(config[GLOBAL_KEYS[name]]), "global"
        else:  # the weight has no global setting: everyone weighs 1 unless their role or they say otherwise
            values[name], sources[name] = 1, "default"
    return Limits(**values), sources


def limits_for(user: User, config: Mapping[str, Any]) -> Limits:
    """Return the limits that apply to ``user``."""
    return resolve(user, config)[0]


def set_limits(user: User, values: Mapping[str, int | None]) -> User:
    """Set (or with None, clear) some of a user's own limits; commit and return the user."""
    for name, value in values.items():
        if name not in FIELDS:
            raise InvalidRequest(f"unknown limit {name!r}; the limits are {', '.join(FIELDS)}",
                                 {"json": {name: ["unknown limit"]}})
        if value is not None and (value < 0 or (name in ("max_running", "weight") and value < 1)):
            raise InvalidRequest(f"{name} must be a whole number, at least 1 for max_running and weight and 0 "
                                 "(no limit) or more for the others", {"json": {name: ["out of range"]}})
        setattr(user, name, value)
    db.session.commit()
    return user


def count(user_id: str | None, statuses: tuple[str, ...], cap: int | None = None) -> int:
    """Count a user's (None: everyone's) jobs in ``statuses``, stopping past ``cap`` so a long backlog costs nothing."""
    rows = select(Job.id).where(Job.status.in_(statuses))
    if user_id is not None:
        rows = rows.where(Job.user_id == user_id)
    if cap is not None:
        rows = rows.limit(cap + 1)
    return db.session.scalar(select(func.count()).select_from(rows.subquery())) or 0


def check_waiting(user: User, adding: int, limits: Limits) -> None:
    """Refuse (429) ``adding`` more jobs if that would put more than ``max_waiting`` in wait."""
    if not limits.max_waiting:
        return
    waiting = count(user.id, WAITING_STATUSES, limits.max_waiting)
    if waiting + adding > limits.max_waiting:
        db.session.rollback()
        if adding > limits.max_waiting:
            advice = f"send at most {limits.max_waiting} jobs at once"
        else:
            advice = f"wait for some to start before submitting {f'{adding} more jobs' if adding > 1 else 'another'}"
        raise TooManyRequests(f"you have {waiting} jobs waiting and may have at most {limits.max_waiting}; {advice}",
                              {"waiting": waiting, "max_waiting": limits.max_waiting})


def usage(user: User) -> dict[str, int]:
    """Return how many of the user's jobs are pending, queued and running now."""
    rows = db.session.execute(select(Job.status, func.count()).where(
        Job.user_id == user.id, Job.status.in_(("pending", "queued", "running"))).group_by(Job.status))
    found = {status: number for status, number in rows}
    return {status: found.get(status, 0) for status in ("pending", "queued", "running")}


def describe(user: User, config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a user's limits with where each comes from, as the account view shows them."""
    values, sources = resolve(user, config)
    return {**asdict(values), "sources": sources}
