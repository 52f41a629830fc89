"""Editor sessions: a single-use ticket that becomes a student's cookie for ComfyUI's editor under /comfy/.

A service, an admin or a student's own teacher mints a session for a user and
gets a ticket (a link); opening the link redeems the ticket once and sets a
session token as a cookie. Only the SHA-256 of ticket and token is stored, as
with API keys: both are 256 random bits, so no slower hash is needed.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import or_, select, update

from ..db.extensions import db
from ..db.models import EditorSession, User, utcnow
from ..errors import Forbidden, NotFound

TICKET_SECONDS = 300  # a link must be opened within five minutes
MINTERS = ("admin", "service", "teacher")


def digest(secret: str) -> str:
    """Return the stored form of a ticket or token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def target_of(caller: User, who: str) -> User:
    """Return the user (by name or id) ``caller`` may open the editor for, or raise Forbidden / NotFound."""
    if caller.role not in MINTERS:
        raise Forbidden(f"editor sessions are made by a service, teacher or admin key; yours is a {caller.role}'s")
    user = db.session.scalar(select(User).where(or_(User.name == who, User.id == who)))
    if user is None or (caller.role == "teacher" and user.teacher_id != caller.id):
        raise NotFound(f"no user {who!r}" + (" among your students" if caller.role == "teacher" else "") +
                       f"; create them first: `comfyq users create {who} --role student --credits 20` or "
                       "POST /v1/admin/users")
    if user.disabled:
        raise Forbidden(f"user {user.name!r} is disabled; enable them first")
    return user


def mint(caller: User, who: str) -> tuple[EditorSession, str]:
    """Create a session for the user ``who`` names; return it and its ticket, whose plain text is shown once."""
    user = target_of(caller, who)
    ticket = secrets.token_urlsafe(32)
    session = EditorSession(user_id=user.id, created_by=caller.id, ticket_sha256=digest(ticket),
                            ticket_expires_at=utcnow() + timedelta(seconds=TICKET_SECONDS))
    db.session.add(session)
    db.session.commit()
    return session, ticket


def redeem(ticket: str, hours: float) -> tuple[EditorSession, str] | None:
    """Turn a live, unused ticket into a session token valid ``hours``; None if it is unknown, used or expired."""
    token, now = secrets.token_urlsafe(32), utcnow()
    # One guarded UPDATE: of two tabs opening the same link at once, exactly one wins.
    done = db.session.execute(update(EditorSession).where(
        EditorSession.ticket_sha256 == digest(ticket), EditorSession.redeemed_at.is_(None),
        EditorSession.revoked_at.is_(None), EditorSession.ticket_expires_at > now,
    ).values(token_sha256=digest(token), redeemed_at=now, expires_at=now + timedelta(hours=hours)))
    db.session.commit()
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session = db.session.scalar(select(EditorSession).where(EditorSession.token_sha256 == digest(token)))
    return (session, token) if session is not None else None


def user_for_token(token: str) -> User | None:
    """Return the enabled user of a live session token, or None."""
    if not token or len(token) > 100:
        return None
    session = db.session.scalar(select(EditorSession).where(EditorSession.token_sha256 == digest(token)))
    if session is None or session.revoked_at is not None or session.expires_at is None \
            or session.expires_at <= utcnow():
        return None
    user = db.session.get(User, session.user_id)
    return user if user is not None and not user.disabled else None


def sessions_of(caller: User, who: str) -> list[EditorSession]:
    """Return the sessions of the user ``who`` names, newest first."""
    user = target_of(caller, who)
    return list(db.session.scalars(select(EditorSession).where(EditorSession.user_id == user.id)
                                   .order_by(EditorSession.created_at.desc())))


def revoke(caller: User, session_id: str) -> EditorSession:
    """Revoke a session ``caller`` may manage: its link and cookie stop working at once."""
    session = db.session.get(EditorSession, session_id)
    user = db.session.get(User, session.user_id) if session is not None else None
    allowed = user is not None and caller.role in MINTERS and (caller.role != "teacher" or
                                                                user.teacher_id == caller.id)
    if session is None or not allowed:
        raise NotFound(f"no editor session {session_id!r}")
    if session.revoked_at is None:
        session.revoked_at = utcnow()
        db.session.commit()
    return session


def state_of(session: EditorSession) -> str:
    """Return where a session is: ``unopened``, ``active``, ``expired`` or ``revoked``."""
    now = utcnow()
    if session.revoked_at is not None:
        return "revoked"
    if session.redeemed_at is None:
        return "unopened" if session.ticket_expires_at > now else "expired"
    return "active" if session.expires_at is not None and session.expires_at > now else "expired"
