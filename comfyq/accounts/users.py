"""Users and their API keys: create, disable, issue, revoke, and find who a presented key belongs to.

A key reads ``cq_<id>_<secret>``: the id is stored as is (to find the key and
list it), the secret only as its SHA-256. A secret of 256 random bits needs no
slow hash: nobody can guess it, so only a stolen table could be attacked, and a
hash of that much entropy cannot be reversed.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from typing import Any, Collection

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.exc import IntegrityError

from ..config.settings import ROLES
from ..errors import Conflict, Forbidden, InvalidRequest, NotFound
from ..db.extensions import db
from ..db.models import ApiKey, User, utcnow

LEVELS = ("novice", "expert")
USER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"  # as JSON Schema reads it: $ is the very end
USER_NAME_RULE = "use up to 64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit"
NAME = re.compile(USER_NAME[1:-1])  # fullmatch: Python's $ would let a trailing newline through
KEY = re.compile(r"^cq_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")


def _digest(secret: str) -> str:
    """Return the stored form of a key's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_user(name: str, role: str, level: str = "novice", teacher: str | None = None) -> User:
    """Create a user; a student may name its teacher (a user with the teacher role)."""
    if not NAME.fullmatch(name):
        raise InvalidRequest(f"user name {name!r}: {USER_NAME_RULE}",
                             {"json": {"name": ["bad user name"]}})
    if role not in ROLES or level not in LEVELS:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)} and level one of {', '.join(LEVELS)}",
                             {"json": {"role" if role not in ROLES else "level": ["not one of the choices"]}})
    teacher_id = None
    if teacher is not None:
        found = get_user(teacher)
        if found.role != "teacher" or role != "student":
            raise InvalidRequest(f"only a student can have a teacher, and {teacher!r} must have the teacher role",
                                 {"json": {"teacher": ["not a teacher of a student"]}})
        teacher_id = found.id
    user = User(name=name, role=role, level=level, teacher_id=teacher_id, disabled=False)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(f"a user named {name!r} exists already; pick another name") from None
    return user


def get_user(name: str) -> User:
    """Return the user called ``name`` or raise NotFound."""
    user = db.session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user {name!r}; list them with GET /v1/admin/users or `comfyq users list`")
    return user


def user_by_id(user_id: str) -> User | None:
    """Return the user with this id, if any."""
    return db.session.get(User, user_id)


def list_users() -> list[User]:
    """Return every user, oldest first."""
    return list(db.session.scalars(select(User).order_by(User.created_at, User.name)))


def set_disabled(name: str, disabled: bool = True) -> User:
    """Disable (or enable again) a user: a disabled user's keys stop working at once."""
    user = get_user(name)
    user.disabled = disabled
    db.session.commit()
    return user


def issue_key(user: User, label: str | None = None) -> tuple[ApiKey, str]:
    """Issue a key for ``user``; return it and its plain text, which is never shown again."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey(id=key_id, user_id=user.id, secret_sha256=_digest(secret), label=label)
    db.session.add(key)
    db.session.commit()
    return key, f"cq_{key_id}_{secret}"


def revoke_key(key_id: str) -> ApiKey:
    """Revoke a key by its id (the part after ``cq_``); revoking twice is harmless."""
    key = db.session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id!r}; a key's id is the 12 characters after 'cq_'")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db.session.commit()
    return key


def user_for_key(presented: str) -> User | None:
    """Return the enabled user whose live key this is, or None."""
    match = KEY.match(presented)
    if match is None:
        return None
    key = db.session.get(ApiKey, match["id"])
    if key is None or key.revoked_at is not None or key.user.disabled:
        return None
    if not hmac.compare_digest(key.secret_sha256, _digest(match["secret"])):
        return None
    return key.user


def bootstrap_admin() -> str | None:
    """Create user ``admin`` with a key if there are no users yet; return that key, else None."""
    if db.session.scalar(select(User.id).limit(1)) is not None:
        return None
    _, plain = issue_key(create_user("admin", "admin", "expert"), label="created by comfyq up")
    return plain


def visible_to(user: User, owner: ColumnElement[str | None]) -> ColumnElement[bool]:
    """Return the condition on ``owner`` that selects what ``user`` may see: admins all, teachers their class."""
    if user.role == "admin":
        return true()
    if user.role == "teacher":
        students = select(User.id).where(User.teacher_id == user.id)
        return or_(owner == user.id, owner.in_(students))
    return owner == user.id


def visible_row(model: Any, row_id: str, user: User, missing: str) -> Any:
    """Return the row of ``model`` with this id if ``user`` may see it, else raise NotFound(``missing``).

    Someone else's row is "not found" exactly like a missing one: no hint that it exists.
    """
    row = db.session.scalar(select(model).where(model.id == row_id, visible_to(user, model.user_id)))
    if row is None:
        raise NotFound(missing)
    return row


def check_submission(user: User, body: dict[str, Any], raw_roles: Collection[str]) -> None:
    """Refuse what ``user`` may not submit: a raw workflow, or expert-mode template params."""
    trusted = user.role in ("admin", "service")
    if body.get("workflow") is not None and not (user.role in raw_roles and (trusted or user.level == "expert")):
        raise Forbidden(f"a {user.level} {user.role} may only submit templates, not raw workflows; "
                        "send {\"template\": …, \"params\": …} (GET /v1/templates lists them)")
    if body.get("mode") == "expert" and not trusted and user.level != "expert":
        raise Forbidden("a novice account may only set novice parameters: drop \"mode\": \"expert\" "
                        "or ask an admin for the expert level")
