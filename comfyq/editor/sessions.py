"""Opening an editor link: the single-use ticket becomes the student's cookie; without one, a page that says why."""
from __future__ import annotations

from html import escape

from flask import Response, current_app, redirect

from ..accounts.editor_sessions import redeem
from .auth import NO_SESSION, set_cookie

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>comfyq editor: no session</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>No editor session</h1>
<p>{message}</p>
<p>Go back to your course page and open the editor from there again.</p>
</body></html>
"""


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
