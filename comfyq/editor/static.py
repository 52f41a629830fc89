"""The editor's page and files, from the ``comfyui-frontend-package`` wheel.

The page (and any path that is not one of the wheel's files) needs a
session; the wheel's own files are public, as they are on PyPI, because
browsers fetch some of them (the web manifest) without cookies.
"""
from __future__ import annotations

import functools
from pathlib import Path

from flask import Blueprint, Response, request, send_from_directory
from werkzeug.exceptions import NotFound as FileMissing

from .auth import COOKIE, no_session_page, open_ticket, student_of_cookie

bp = Blueprint("comfy_page", __name__)


@functools.cache
def frontend_root() -> Path:
    """Return the folder of the frontend's static files, inside the installed wheel."""
    import comfyui_frontend_package

    return Path(comfyui_frontend_package.__file__).parent / "static"


@bp.before_request
def _session_or_page() -> Response | None:
    """Redeem a link's ticket, or answer the 401 page to a browser without a live session."""
    ticket = request.args.get("ticket")
    if ticket is not None and request.path == "/comfy/":
        return open_ticket(ticket)
    if student_of_cookie(request.cookies.get(COOKIE)) is None and not _public(request.view_args or {}):
        return no_session_page()
    return None


def _public(view_args: dict[str, str]) -> bool:
    """Tell whether a request asks for one of the wheel's own files, other than the page."""
    name = view_args.get("filename")
    if not name or name == "index.html":
        return False
    root = frontend_root().resolve()
    path = (root / name).resolve()
    return path.is_relative_to(root) and path.is_file()


@bp.route("/")
def index() -> Response:
    """Serve the editor's page."""
    response = send_from_directory(frontend_root(), "index.html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.route("/<path:filename>")
def files(filename: str) -> Response:
    """Serve one of the editor's files (scripts, styles, fonts); 404 for any other path."""
    try:
        return send_from_directory(frontend_root(), filename, max_age=3600)
    except FileMissing:
        return Response('{"error": "not found"}', status=404, mimetype="application/json")
