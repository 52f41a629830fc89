"""API keys on every /v1 request: who is calling, and whether their role may do what they ask."""
from __future__ import annotations

from flask import Flask, g, request

from ..accounts.users import user_for_key
from ..errors import Forbidden, Unauthorized
from ..db.models import User


def init_auth(flask_app: Flask) -> None:
    """Require an API key on every /v1 route (health, docs and the OpenAPI document stay open)."""
    flask_app.before_request(_authenticate)


def _authenticate() -> None:
    """Find the user of the request's key, or answer 401."""
    if not request.path.startswith("/v1/"):
        return
    header = request.headers.get("Authorization", "")
    presented = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("X-API-Key", "")
    if not presented.strip():
        raise Unauthorized("send your API key: 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    user = user_for_key(presented.strip())
    if user is None:
        raise Unauthorized("this API key is unknown, revoked, or its user is disabled; ask an admin for one")
    g.user = user


def current_user() -> User:
    """Return the user of the current request."""
    return g.user


def require_role(*roles: str) -> User:
    """Return the current user if their role is one of ``roles``, else answer 403."""
    user = current_user()
    if user.role not in roles:
        raise Forbidden(f"this needs the role {' or '.join(roles)}; your key belongs to a {user.role}")
    return user
