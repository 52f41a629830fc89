"""Event streams (Server-Sent Events): one job's, or every job of the caller's.

The view answers with the stream's opening and, while there is more to come,
the ``X-Comfyq-Hold`` header; the ASGI server (``comfyq.asgi``) removes it and
keeps the connection open with live events. Served by a plain WSGI server, a
stream ends after its opening and the client reconnects with ``Last-Event-ID``.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Response, request

from ..jobs.queries import get_job
from ..events.sse import HOLD_HEADER, HOLDER_HEADER
from ..events.streams import Opening, open_job, open_user, render_opening
from .auth import current_user
from .parser import Blueprint

# Before OpenAPI 3.2, the schema of an event stream describes each of its events.
EVENT_SCHEMA = {"type": "object", "required": ["event", "data"], "properties": {
    "id": {"type": "string", "description": "its place in the log: send it back as Last-Event-ID to resume"},
    "event": {"type": "string", "description": "queued, started, progress, output, then one of succeeded, failed, "
                                               "timed_out, cancelled"},
    "data": {"type": "string", "description": "the event as JSON: its type, job_id, at (ISO 8601, +00:00) "
                                              "and what the type tells"},
    "retry": {"type": "integer", "description": "milliseconds to wait before reconnecting"}}}
STREAM_DOC = {
    "responses": {"200": {"description": "Server-Sent Events; each `data` is one JSON event",
                          "content": {"text/event-stream": {"schema": EVENT_SCHEMA}}}},
    "parameters": [{"in": "header", "name": "Last-Event-ID", "required": False, "schema": {"type": "string"},
                    "description": "the id of the last event you got: the stream goes on after it"}],
}

bp = Blueprint("streams", __name__, description="Live job events as Server-Sent Events")


def _respond(opening: Opening) -> Response:
    """Return the opening as an event stream, marked for holding unless it is complete."""
    response = Response(render_opening(opening), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
    if not opening.done and request.method == "GET" and request.headers.get(HOLDER_HEADER) == "1":
        response.headers[HOLD_HEADER] = json.dumps(opening.hold(), separators=(",", ":"))
    return response


@bp.route("/v1/jobs/<job_id>/events")
@bp.doc(**STREAM_DOC)
def job_events(job_id: str) -> Any:
    """Stream a job's events: its state now, then queued/started/progress/output, then its final event."""
    return _respond(open_job(get_job(job_id, current_user()), request.headers.get("Last-Event-ID")))


@bp.route("/v1/events")
@bp.doc(**STREAM_DOC)
def user_events() -> Any:
    """Stream the events of all your jobs: your active jobs' state now, then every event as it happens."""
    return _respond(open_user(current_user(), request.headers.get("Last-Event-ID")))
