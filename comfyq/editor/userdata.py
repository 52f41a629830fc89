"""The editor's per-student storage: settings, saved workflows and other user files, kept in the database.

Paths are relative (``workflows/a.json``): no ``..``, ``.``, empty or absolute
parts, no backslashes; each file is at most ``MAX_FILE_BYTES``, a student
keeps at most ``MAX_FILES`` of ``MAX_TOTAL_BYTES`` in all. Settings are the file ``comfy.settings.json``,
as in ComfyUI's own user folder.
"""
from __future__ import annotations

import json
import mimetypes
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..db.extensions import db
from ..db.models import EditorFile, utcnow
from ..errors import Conflict, InvalidRequest, NotFound, TooLarge
from .auth import current_student, require_student
from .shapes import json_body

bp = Blueprint("comfy_userdata", __name__)
bp.before_request(require_student)
SETTINGS = "comfy.settings.json"
MAX_FILE_BYTES = 2_000_000
MAX_FILES = 1000
MAX_TOTAL_BYTES = 50_000_000  # all of one student's files


def checked_path(path: str) -> str:
    """Return ``path`` if it is a safe relative file path, else raise InvalidRequest."""
    parts = path.split("/")
    if not path or len(path) > 255 or "\\" in path or "\x00" in path or path.startswith("/") or \
            any(part in ("", ".", "..") for part in parts) or not path.isprintable():
        raise InvalidRequest(f"{path[:80]!r} is not a file path here: use relative names like workflows/a.json")
    return path


def find(path: str) -> EditorFile | None:
    """Return the student's file at ``path``, if any."""
    return db.session.scalar(select(EditorFile).where(EditorFile.user_id == current_student().id,
                                                      EditorFile.path == path))


def info(row: EditorFile, base: str = "") -> dict[str, Any]:
    """Return a file as ComfyUI's ``full_info`` lists it."""
    return {"path": row.path[len(base):], "size": row.size, "modified": int(row.updated_at.timestamp() * 1000)}


def write(path: str, content: bytes, overwrite: bool = True) -> EditorFile:
    """Store ``content`` at the student's ``path``; raise Conflict if it exists and ``overwrite`` is false."""
    if len(content) > MAX_FILE_BYTES:
        raise TooLarge(f"a saved file may be at most {MAX_FILE_BYTES} bytes; this one has {len(content)}")
    row = find(path)
    if row is not None and not overwrite:
        raise Conflict(f"{path!r} exists already")
    held, used = db.session.execute(select(func.count(), func.coalesce(func.sum(EditorFile.size), 0))
                                    .where(EditorFile.user_id == current_student().id)).one()
    if row is None and held >= MAX_FILES:
        raise TooLarge(f"you keep {held} files, the most allowed; delete some first")
    if used - (row.size if row is not None else 0) + len(content) > MAX_TOTAL_BYTES:
        raise TooLarge(f"your saved files would pass {MAX_TOTAL_BYTES // 1_000_000} MB in all; delete some first")
    if row is None:
        row = EditorFile(user_id=current_student().id, path=path, content=b"", size=0)
        db.session.add(row)
    row.content, row.size, row.updated_at = content, len(content), utcnow()
    try:
        db.session.commit()
    except IntegrityError:  # the same path written twice at once: the other write won
        db.session.rollback()
        raise Conflict(f"{path!r} was written at the same moment; try again") from None
    return row


def settings() -> dict[str, Any]:
    """Return the student's settings."""
    row = find(SETTINGS)
    try:
        found = json.loads(row.content) if row is not None else {}
    except ValueError:
        found = {}
    return found if isinstance(found, dict) else {}


@bp.route("/users", methods=["GET"])
def users() -> dict[str, Any]:
    """Answer as a single-user ComfyUI does: settings and files live on the server."""
    return {"storage": "server", "migrated": True}


@bp.route("/settings", methods=["GET"])
def get_settings() -> dict[str, Any]:
    """Answer all of the student's settings."""
    return settings()


@bp.route("/settings", methods=["POST"])
def post_settings() -> Response:
    """Merge an object of settings into the student's."""
    body = json_body()
    if not isinstance(body, dict):
        raise InvalidRequest("send an object of setting id → value")
    write(SETTINGS, json.dumps({**settings(), **body}).encode())
    return Response(status=200)


@bp.route("/settings/<setting_id>", methods=["GET"])
def get_setting(setting_id: str) -> Response:
    """Answer one setting's value (null when unset)."""
    return jsonify(settings().get(setting_id))


@bp.route("/settings/<setting_id>", methods=["POST"])
def post_setting(setting_id: str) -> Response:
    """Set one setting to the JSON value of the body."""
    value = json_body()
    write(SETTINGS, json.dumps({**settings(), setting_id: value}).encode())
    return Response(status=200)


@bp.route("/userdata", methods=["GET"])
def listing() -> Response:
    """List the student's files under ``dir`` (404 when there are none, as ComfyUI answers for a missing folder)."""
    folder = checked_path(request.args.get("dir", "").rstrip("/"))  # the editor asks for "subgraphs/"
    recurse, full, split = (request.args.get(key, "").lower() == "true" for key in ("recurse", "full_info", "split"))
    base = folder + "/"
    rows = db.session.scalars(select(EditorFile).where(EditorFile.user_id == current_student().id,
                                                       EditorFile.path.startswith(base, autoescape=True))
                              .order_by(EditorFile.path)).all()
    rows = [row for row in rows if recurse or "/" not in row.path[len(base):]]
    if not rows:
        raise NotFound(f"no files under {folder!r}")
    if full:
        return jsonify([info(row, base) for row in rows])
    names = [row.path[len(base):] for row in rows]
    return jsonify([[name, *name.split("/")] for name in names] if split else names)


@bp.route("/userdata/<path:file>", methods=["GET"])
def read(file: str) -> Response:
    """Answer one of the student's files."""
    row = find(checked_path(file))
    if row is None:
        raise NotFound(f"no file {file!r}")
    return Response(row.content, mimetype=mimetypes.guess_type(row.path)[0] or "application/octet-stream")


@bp.route("/userdata/<path:file>", methods=["POST"])
def save(file: str) -> Response:
    """Store the body as one of the student's files (``…/move/<dest>``: rename it); answer its path or info."""
    overwrite = request.args.get("overwrite", "true").lower() != "false"
    source, moving, dest = file.partition("/move/")
    if moving:
        row = find(checked_path(source))
        if row is None:
            raise NotFound(f"no file {source!r}")
        target = row
        if checked_path(dest) != source:
            target = write(dest, row.content, overwrite)
            db.session.delete(row)
            db.session.commit()
    else:
        target = write(checked_path(file), request.get_data(), overwrite)
    full = request.args.get("full_info", "").lower() == "true"
    return jsonify(info(target) if full else target.path)


@bp.route("/userdata/<path:file>", methods=["DELETE"])
def delete(file: str) -> Response:
    """Delete one of the student's files."""
    row = find(checked_path(file))
    if row is None:
        raise NotFound(f"no file {file!r}")
    db.session.delete(row)
    db.session.commit()
    return Response(status=204)
