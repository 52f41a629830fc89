"""Who the editor acts as: the student of the request's session cookie."""
from __future__ import annotations

from flask import Response, current_app, g, request

from ..accounts.editor_sessions import user_for_token
from ..db.models import User
from ..errors import Unauthorized

COOKIE = "comfyq_editor"
COOKIE_PATH = "/comfy/"
NO_SESSION = ("no editor session: open the link your teaching platform gives you (it is valid once, for a few "
              "minutes); a session ends when it expires or is revoked")


def student_of_cookie(token: str | None) -> User | None:
    """Return the student a session cookie's value stands for, or None."""
    return user_for_token(token) if token else None


def require_student() -> None:
    """Find the student of the request's cookie, or answer 401 (a blueprint's ``before_request``)."""
    user = student_of_cookie(request.cookies.get(COOKIE))
    if user is None:
        raise Unauthorized(NO_SESSION)
    g.user = user


def current_student() -> User:
    """Return the student of the current request."""
    return g.user


def set_cookie(response: Response, token: str) -> None:
    """Set the session cookie on ``response``: HttpOnly, SameSite=Lax, Secure behind an https public URL."""
    config = current_app.config
    response.set_cookie(COOKIE, token, max_age=int(config["EDITOR_SESSION_HOURS"] * 3600), path=COOKIE_PATH,
                        httponly=True, samesite="Lax", secure=str(config["PUBLIC_URL"]).startswith("https://"))
