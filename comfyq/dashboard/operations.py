"""What an admin does to the fleet from the dashboard: close or open an instance's intake, drain its worker."""
from __future__ import annotations

from flask import current_app
from redis.exceptions import RedisError

from ..db.extensions import get_redis
from ..db.models import User
from ..errors import Conflict, Forbidden, NotFound, Unavailable
from ..fleet.instances import hold_intake
from ..fleet.lease import PRESENCE_KEY
from ..jobs import broker


def _instance(user: User, name: str) -> str:
    """Return a configured instance's name if ``user`` may act on the fleet, else raise Forbidden / NotFound."""
    if user.role != "admin":
        raise Forbidden(f"only admins act on instances; you are a {user.role}")
    if name not in current_app.config["INSTANCES"]:
        raise NotFound(f"no instance {name!r}; configured: {', '.join(current_app.config['INSTANCES'])}")
    return name


def set_intake(user: User, name: str, open_: bool) -> None:
    """Hold an instance's intake closed (its own queue still runs), or hand it back to the health watch."""
    try:
        hold_intake(get_redis(), _instance(user, name), None if open_ else user.name)
    except RedisError as exc:
        raise Unavailable(f"Redis is unreachable: {exc}") from exc


def drain(user: User, name: str) -> str:
    """Ask the worker of an instance for a warm shutdown (it finishes its job, then exits); return its hostname."""
    try:
        hostname = get_redis().get(PRESENCE_KEY.format(_instance(user, name)))
    except RedisError as exc:
        raise Unavailable(f"Redis is unreachable: {exc}") from exc
    if not hostname:
        raise Conflict(f"no worker of {name} is running")
    broker.shutdown_worker(hostname.decode())
    return hostname.decode()
