"""Submission rate limits per user: a moving one-minute window kept in Redis by ``limits``.

flask-limiter's engine, used directly: the limit differs per user (their own,
their role's or the global one), and a refusal must come in the one error shape.
"""
from __future__ import annotations

import logging
import math
import time

from flask import Flask, current_app
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from ..errors import TooManyRequests
from .limits import limits_for
from ..db.models import User

logger = logging.getLogger(__name__)


def init_ratelimit(flask_app: Flask) -> None:
    """Give the app a rate limiter that counts in its Redis."""
    storage = RedisStorage(flask_app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5)
    flask_app.extensions["ratelimiter"] = MovingWindowRateLimiter(storage)


def check_rate(user: User) -> None:
    """Count one submission of ``user``, or refuse it (429) when their per-minute limit is used up."""
    rate = limits_for(user, current_app.config).rate_per_minute
    if not rate:
        return
    limiter: MovingWindowRateLimiter = current_app.extensions["ratelimiter"]
    item = RateLimitItemPerMinute(rate)
    try:
        if limiter.hit(item, "submit", user.id):
            return
        reset = limiter.get_window_stats(item, "submit", user.id).reset_time
    except (StorageError, RedisError, OSError) as exc:  # better to let a job through than to refuse it unjustly
        logger.warning("rate limit of %s not counted, Redis is unreachable: %s", user.name, exc)
        return
    wait = max(1, math.ceil(reset - time.time()))
    raise TooManyRequests(f"you have used your {rate} submissions per minute; try again in {wait} s",
                          {"rate_per_minute": rate, "retry_after": wait}, headers={"Retry-After": str(wait)})
