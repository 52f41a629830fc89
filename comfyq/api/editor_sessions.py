"""Editor session endpoints: a teaching backend opens ComfyUI's editor (/comfy/) for one student."""
from __future__ import annotations

from typing import Any

from flask import current_app, request
from marshmallow import Schema, fields, validate

from ..accounts import editor_sessions as sessions
from ..db.models import EditorSession
from .auth import current_user
from .fields import Timestamp
from .parser import Blueprint

bp = Blueprint("editor_sessions", __name__, url_prefix="/v1/editor-sessions",
               description="Open ComfyUI's own editor (/comfy/) as one student")


class SessionCreateSchema(Schema):
    """Whom the editor acts as."""

    user = fields.String(required=True, validate=validate.Length(min=1, max=64),
                         metadata={"description": "the student's name or id (a teacher: one of their students)"})


class SessionQuerySchema(Schema):
    """Whose sessions to list."""

    user = fields.String(required=True, validate=validate.Length(min=1, max=64),
                         metadata={"description": "the user's name or id"})


class SessionSchema(Schema):
    """An editor session, without its secrets."""

    id = fields.String()
    user = fields.String(metadata={"description": "the student's name"})
    state = fields.String(metadata={"description": "unopened, active, expired or revoked"})
    created_at = Timestamp()
    ticket_expires_at = Timestamp(metadata={"description": "the link must be opened before this"})
    redeemed_at = Timestamp(allow_none=True)
    expires_at = Timestamp(allow_none=True, metadata={"description": "the cookie's end, once opened"})
    revoked_at = Timestamp(allow_none=True)


class MintedSessionSchema(SessionSchema):
    """A new session and its single-use link, shown only in this answer."""

    link = fields.String(metadata={"description": "open it once, in the student's browser, within 5 minutes"})


def present_session(session: EditorSession, user_name: str) -> dict[str, Any]:
    """Return a session as its managers see it."""
    return {"id": session.id, "user": user_name, "state": sessions.state_of(session),
            "created_at": session.created_at, "ticket_expires_at": session.ticket_expires_at,
            "redeemed_at": session.redeemed_at, "expires_at": session.expires_at, "revoked_at": session.revoked_at}


def editor_link(ticket: str) -> str:
    """Return the link that opens the editor with ``ticket``, on COMFYQ_PUBLIC_URL or the request's host."""
    base = current_app.config["PUBLIC_URL"] or request.host_url.rstrip("/")
    return f"{base}/comfy/?ticket={ticket}"


@bp.route("", methods=["POST"])
@bp.arguments(SessionCreateSchema, example={"user": "student1"})
@bp.response(201, MintedSessionSchema)
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Make a single-use link that opens ComfyUI's editor as a student (services, admins, their teacher)."""
    session, ticket = sessions.mint(current_user(), body["user"])
    target = sessions.target_of(current_user(), session.user_id)
    return dict(present_session(session, target.name), link=editor_link(ticket))


@bp.route("", methods=["GET"])
@bp.arguments(SessionQuerySchema, location="query")
@bp.response(200, SessionSchema(many=True))
def listing(args: dict[str, Any]) -> list[dict[str, Any]]:
    """List a user's editor sessions, newest first."""
    target = sessions.target_of(current_user(), args["user"])
    return [present_session(s, target.name) for s in sessions.sessions_of(current_user(), target.id)]


@bp.route("/<session_id>", methods=["DELETE"])
@bp.response(200, SessionSchema)
def revoke(session_id: str) -> dict[str, Any]:
    """Revoke an editor session: its link and its cookie stop working at once."""
    session = sessions.revoke(current_user(), session_id)
    return present_session(session, sessions.target_of(current_user(), session.user_id).name)
