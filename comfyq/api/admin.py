"""Admin endpoints: users, their API keys, credits and limits."""
from __future__ import annotations

from typing import Any

from ..accounts import users as accounts, credits, limits
from ..submission import admission
from ..db.models import ApiKey, LedgerEntry, User
from .account_schemas import (CreditChangeSchema, IssuedKeySchema, KeyCreateSchema, KeySchema, LedgerEntrySchema,
                              LedgerPageSchema, LimitsChangeSchema, UserCreateSchema, UserSchema)
from .auth import current_user, require_role
from .parser import Blueprint
from .schemas import PageQuerySchema

bp = Blueprint("admin", __name__, url_prefix="/v1/admin",
               description="Users, API keys, credits and limits (admins only)")


@bp.before_request
def _admins_only() -> None:
    """Answer 403 to any key that is not an admin's (auth ran first, app-wide)."""
    require_role("admin")


def present_user(user: User) -> dict[str, Any]:
    """Return a user as admins see it."""
    teacher = accounts.user_by_id(user.teacher_id) if user.teacher_id else None
    return {"id": user.id, "name": user.name, "role": user.role, "level": user.level,
            "teacher": teacher.name if teacher else None, "disabled": user.disabled, "created_at": user.created_at,
            "balance": user.balance, "limits": {name: getattr(user, name) for name in limits.FIELDS}}


def present_entry(entry: LedgerEntry) -> dict[str, Any]:
    """Return a ledger entry."""
    return {"id": entry.id, "kind": entry.kind, "amount": entry.amount, "job_id": entry.job_id,
            "note": entry.note, "created_at": entry.created_at}


def present_key(key: ApiKey) -> dict[str, Any]:
    """Return a key without its secret."""
    return {"id": key.id, "user": key.user.name, "label": key.label, "created_at": key.created_at,
            "revoked_at": key.revoked_at}


@bp.route("/users", methods=["POST"])
@bp.arguments(UserCreateSchema, example={"name": "kim", "role": "student", "credits": 20,
                                         "limits": {"max_running": 1}})
@bp.response(201, UserSchema)
def create_user(body: dict[str, Any]) -> dict[str, Any]:
    """Create a user with a role and a level, and optionally credits and limits of their own."""
    user = accounts.create_user(body["name"], body["role"], body["level"], body["teacher"])
    if body["limits"]:
        limits.set_limits(user, body["limits"])
    if body["credits"]:
        credits.change(user, body["credits"], "grant", "granted at creation", current_user())
    return present_user(user)


@bp.route("/users", methods=["GET"])
@bp.response(200, UserSchema(many=True))
def list_users() -> list[dict[str, Any]]:
    """List every user."""
    return [present_user(u) for u in accounts.list_users()]


@bp.route("/users/<name>/disable", methods=["POST"])
@bp.response(200, UserSchema)
def disable_user(name: str) -> dict[str, Any]:
    """Disable a user: their keys stop working at once."""
    return present_user(accounts.set_disabled(name, True))


@bp.route("/users/<name>/enable", methods=["POST"])
@bp.response(200, UserSchema)
def enable_user(name: str) -> dict[str, Any]:
    """Enable a disabled user again."""
    return present_user(accounts.set_disabled(name, False))


@bp.route("/users/<name>/keys", methods=["POST"])
@bp.arguments(KeyCreateSchema, required=False, example={"label": "kim's laptop"})
@bp.response(201, IssuedKeySchema)
def issue_key(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Issue an API key for a user; its plain text is in this answer only."""
    key, plain = accounts.issue_key(accounts.get_user(name), body["label"])
    return dict(present_key(key), key=plain)


@bp.route("/keys/<key_id>/revoke", methods=["POST"])
@bp.response(200, KeySchema)
def revoke_key(key_id: str) -> dict[str, Any]:
    """Revoke an API key by its id."""
    return present_key(accounts.revoke_key(key_id))


@bp.route("/users/<name>/credits", methods=["POST"])
@bp.arguments(CreditChangeSchema, example={"amount": 50, "note": "week 2"})
@bp.response(201, LedgerEntrySchema)
def change_credits(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Grant credits, or adjust a balance up or down (never below zero); answers with the ledger entry."""
    entry = credits.change(accounts.get_user(name), body["amount"], body["kind"], body["note"], current_user())
    return present_entry(entry)


@bp.route("/users/<name>/ledger", methods=["GET"])
@bp.arguments(PageQuerySchema, location="query")
@bp.response(200, LedgerPageSchema)
def ledger(args: dict[str, Any], name: str) -> dict[str, Any]:
    """List a user's ledger entries, newest first, a page at a time (like GET /v1/jobs)."""
    entries, total = credits.page(accounts.get_user(name), args["page"], args["page_size"])
    return {"items": [present_entry(e) for e in entries], "page": args["page"], "page_size": args["page_size"],
            "total": total}


@bp.route("/users/<name>/limits", methods=["PATCH"])
@bp.arguments(LimitsChangeSchema, example={"max_running": 2, "rate_per_minute": 10})
@bp.response(200, UserSchema)
def set_limits(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Set a user's own limits; null clears one, so the role's or the global limit applies again."""
    user = limits.set_limits(accounts.get_user(name), body)
    admission.admit_and_dispatch(user.id)  # a raised cap lets pending jobs in now
    return present_user(user)
