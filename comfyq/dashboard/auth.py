"""Who is looking at the dashboard: a session cookie made from an API key presented once, never the key itself.

Cookie-authenticated POSTs (sign-in, sign-out, actions) must come from a page
of this origin (``Origin``, else ``Referer``): another site cannot make an
operator's browser cancel jobs. The cookie is also ``SameSite=Strict``.
"""
from __future__ import annotations

from html import escape
from urllib.parse import urlsplit

from flask import Response, current_app, g, request

from ..accounts.operator_sessions import operator_for_token
from ..db.models import User
from ..errors import Forbidden, Unauthorized

COOKIE = "comfyq_operator"
COOKIE_PATH = "/dashboard"
SIGNED_OUT = "sign in at /dashboard with an admin's or teacher's API key"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>comfyq dashboard: sign in</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head>
<body class="sign-in"><form method="post" action="/dashboard/sign-in" autocomplete="off">
<h1>comfyq dashboard</h1>
<p>Paste an admin's or teacher's API key. It is checked once and not kept in the page:
you get a session cookie instead.</p>
<p class="problem">{message}</p>
<input type="password" name="key" id="key" placeholder="cq_…" required autofocus>
<button type="submit" id="sign-in">Sign in</button>
</form></body></html>
"""


def _origin(url: str) -> str:
    """Return the scheme://host[:port] of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_same_origin() -> None:
    """Refuse a POST that does not come from one of this server's own pages (403)."""
    claimed = request.headers.get("Origin") or request.headers.get("Referer") or ""
    allowed = {_origin(request.host_url)}
    if current_app.config.get("PUBLIC_URL"):
        allowed.add(_origin(str(current_app.config["PUBLIC_URL"])))
    if not claimed or _origin(claimed) not in allowed:
        raise Forbidden("this action must come from the dashboard page itself (Origin or Referer of this server)")


def operator_of_request() -> User | None:
    """Return the operator of the request's session cookie, or None."""
    return operator_for_token(request.cookies.get(COOKIE))


def require_operator() -> User:
    """Return the signed-in operator, or answer 401 in the one error shape."""
    user = operator_of_request()
    if user is None:
        raise Unauthorized(f"no dashboard session: {SIGNED_OUT}")
    g.user = user
    return user


def set_cookie(response: Response, token: str | None) -> None:
    """Set (or with None, clear) the session cookie: HttpOnly, SameSite=Strict, Secure behind https."""
    config = current_app.config
    if token is None:
        response.delete_cookie(COOKIE, path=COOKIE_PATH)
        return
    response.set_cookie(COOKIE, token, max_age=int(config["OPERATOR_SESSION_HOURS"] * 3600), path=COOKIE_PATH,
                        httponly=True, samesite="Strict", secure=str(config["PUBLIC_URL"]).startswith("https://"))


def sign_in_page(message: str = "", status: int = 200) -> Response:
    """Return the sign-in form, with a problem to show."""
    response = Response(PAGE.format(message=escape(message)), status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response
