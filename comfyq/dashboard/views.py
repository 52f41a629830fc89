"""The dashboard's routes: sign-in, the page and its files, a snapshot, a live stream, outputs and actions."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, redirect, request, send_file, send_from_directory

from ..accounts.operator_sessions import sign_in as open_session, sign_out as end_session
from ..errors import ComfyqError, NotFound
from ..events.sse import HOLD_HEADER, HOLDER_HEADER
from ..jobs.queries import get_output
from ..submission.cancellation import cancel_job
from .operations import drain, set_intake
from .auth import COOKIE, check_same_origin, operator_of_request, require_operator, set_cookie, sign_in_page
from .snapshot import snapshot

STATIC = Path(__file__).parent / "static"
RETRY_MS = 2000  # a plain WSGI server ends the stream after one snapshot: the browser comes back this soon

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


def _no_store(response: Response) -> Response:
    """Mark an answer as never to be cached."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("", strict_slashes=False)
def page() -> Response:
    """Serve the dashboard to a signed-in operator, else the sign-in form."""
    if operator_of_request() is None:
        return sign_in_page()
    return _no_store(send_from_directory(STATIC, "dashboard.html", max_age=0))


@bp.route("/static/<name>")
def static(name: str) -> Response:
    """Serve the page's script and style sheet (public: they hold no data)."""
    return send_from_directory(STATIC, name, max_age=300)


@bp.route("/sign-in", methods=["POST"])
def sign_in() -> Response:
    """Turn a presented API key into a session cookie and go to the dashboard."""
    check_same_origin()
    try:
        _, token = open_session(request.form.get("key", ""), float(current_app.config["OPERATOR_SESSION_HOURS"]))
    except ComfyqError as refusal:
        return sign_in_page(refusal.message, refusal.status)
    response = redirect("/dashboard", 303)
    set_cookie(response, token)
    return _no_store(response)


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> Response:
    """End the session and show the sign-in form."""
    check_same_origin()
    end_session(request.cookies.get(COOKIE))
    response = redirect("/dashboard", 303)
    set_cookie(response, None)
    return response


@bp.route("/snapshot")
def current() -> Any:
    """Return everything the dashboard shows, now."""
    return _no_store(current_app.json.response(snapshot(require_operator())))


@bp.route("/events")
def events() -> Response:
    """Stream snapshots as Server-Sent Events; the ASGI server holds the stream and sends each change."""
    user = require_operator()
    body = json.dumps(snapshot(user), separators=(",", ":"), default=str)
    response = _no_store(Response(f"retry: {RETRY_MS}\nevent: snapshot\ndata: {body}\n\n",
                                  mimetype="text/event-stream"))
    response.headers["X-Accel-Buffering"] = "no"
    if request.headers.get(HOLDER_HEADER) == "1":
        response.headers[HOLD_HEADER] = json.dumps({"dashboard": user.id})
    return response


@bp.route("/outputs/<job_id>/<name>")
def output(job_id: str, name: str) -> Response:
    """Serve a job's output to an operator who may see the job (thumbnails)."""
    out = get_output(job_id, name, require_operator())
    store = current_app.extensions["stores"].outputs
    direct = store.url(out.path, out.name, out.content_type)
    if direct is not None and out.expired_at is None:
        return redirect(direct, 302)
    path = store.local_path(out.path)
    if out.expired_at is not None or path is None or not path.is_file():
        raise NotFound(f"output {name!r} of job {job_id} is no longer stored")
    return send_file(path, mimetype=out.content_type, etag=out.sha256, conditional=True, max_age=3600)


@bp.route("/jobs/<job_id>/cancel", methods=["POST"])
def cancel(job_id: str) -> Any:
    """Cancel a job the operator may see: it never runs, or its prompt is interrupted."""
    user = require_operator()
    check_same_origin()
    job = cancel_job(job_id, user)
    return {"id": job.id, "status": job.status}


@bp.route("/instances/<name>/<action>", methods=["POST"])
def act(name: str, action: str) -> Any:
    """Close or open an instance's intake, or drain its worker (admins)."""
    user = require_operator()
    check_same_origin()
    if action == "drain":
        return {"instance": name, "draining": drain(user, name)}
    if action not in ("open", "close"):
        raise NotFound(f"no action {action!r}: open, close or drain")
    set_intake(user, name, action == "open")
    return {"instance": name, "intake_held": action == "close"}
