"""The caller's own account."""
from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import select

from ..accounts import credits, limits
from ..db.extensions import db
from ..db.models import ApiKey
from .account_schemas import AccountSchema
from .admin import present_entry, present_key, present_user
from .auth import current_user
from .parser import Blueprint

bp = Blueprint("account", __name__, url_prefix="/v1/account", description="Your own account")


@bp.route("")
@bp.response(200, AccountSchema)
def account() -> dict[str, Any]:
    """Show who your key belongs to, your keys, balance, limits, jobs in progress and latest ledger entries."""
    user = current_user()
    keys = db.session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.created_at))
    return {"user": present_user(user), "keys": [present_key(k) for k in keys], "balance": user.balance,
            "metered": credits.is_metered(user, current_app.config),
            "limits": limits.describe(user, current_app.config), "usage": limits.usage(user),
            "ledger": [present_entry(e) for e in credits.recent(user)]}
