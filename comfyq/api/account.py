"""The caller's own account."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..models import ApiKey
from .account_schemas import AccountSchema
from .admin import present_key, present_user
from .auth import current_user
from .parser import Blueprint

bp = Blueprint("account", __name__, url_prefix="/v1/account", description="Your own account")


@bp.route("")
@bp.response(200, AccountSchema)
def account() -> dict[str, Any]:
    """Show who your key belongs to, and your keys."""
    user = current_user()
    keys = db.session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.created_at))
    return {"user": present_user(user), "keys": [present_key(k) for k in keys]}
