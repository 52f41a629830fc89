"""Operator sessions: an admin's or teacher's API key, presented once, becomes a dashboard cookie.

The cookie holds a random token; Redis holds only its SHA-256 (as with API
keys), mapped to the user, for the session's lifetime. The user is read
again on every request, so disabling them or revoking the role ends the
session at once. Losing Redis signs operators out, nothing more.
"""
from __future__ import annotations

import hashlib
import secrets

from ..db.extensions import db, get_redis
from ..db.models import User
from ..errors import Forbidden, Unauthorized
from .users import user_for_key

OPERATORS = ("admin", "teacher")
SESSION_KEY = "comfyq:operator-session:{}"


def _key(token: str) -> str:
    """Return the Redis key of a token's session."""
    return SESSION_KEY.format(hashlib.sha256(token.encode()).hexdigest())


def sign_in(presented: str, hours: float) -> tuple[User, str]:
    """Check an operator's API key; return them and a fresh session token valid ``hours``."""
    user = user_for_key(presented.strip()) if presented.strip() else None
    if user is None:
        raise Unauthorized("this API key is unknown, revoked, or its user is disabled")
    if user.role not in OPERATORS:
        raise Forbidden(f"the dashboard is for admins and teachers; this key belongs to a {user.role}")
    token = secrets.token_urlsafe(32)
    get_redis().set(_key(token), user.id, ex=max(60, int(hours * 3600)))
    return user, token


def operator_for_token(token: str | None) -> User | None:
    """Return the enabled admin or teacher of a live session token, or None."""
    if not token or len(token) > 100:
        return None
    user_id = get_redis().get(_key(token))
    user = db.session.get(User, user_id.decode()) if user_id else None
    return user if user is not None and not user.disabled and user.role in OPERATORS else None


def sign_out(token: str | None) -> None:
    """End a session: its cookie stops working at once."""
    if token and len(token) <= 100:
        get_redis().delete(_key(token))
