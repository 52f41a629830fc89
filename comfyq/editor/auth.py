"""Who the editor acts as: a link's single-use ticket becomes a cookie, the cookie names the student.

Without a live session, API routes answer 401 in the one error shape and a
browser asking for a page gets a short HTML explanation.
"""
from __future__ import annotations

from html import escape

from flask import Response, current_app, g, redirect, request

from ..accounts.editor_sessions import redeem, user_for_token
from ..db.models import User
from ..errors import Unauthorized

COOKIE = "comfyq_editor"
COOKIE_PATH = "/comfy/"
NO_SESSION = ("no editor session: open the link your teaching platform gives you (it is valid once, for a few "
              "minutes); a session ends when it expires or is revoked")
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>comfyq editor: no session</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>No editor session</h1>
<p>{message}</p>
<p>Go back to your course page and open the editor from there again.</p>
</body></html>
"""


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


def no_session_page(message: str = NO_SESSION) -> Response:
    """Return the 401 page a browser without a session gets."""
    return Response(PAGE.format(message=escape(message)), status=401, mimetype="text/html",
                    headers={"Cache-Control": "no-store"})


def open_ticket(ticket: str) -> Response:
    """Redeem a link's ticket: set the session cookie and redirect to the editor, or explain why not (401)."""
    found = redeem(ticket, float(current_app.config["EDITOR_SESSION_HOURS"]))
    if found is None:
        return no_session_page("this link was already used, has expired or was revoked; links work once, for "
                               "a few minutes")
    response = redirect("/comfy/", 303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    set_cookie(response, found[1])
    return response
