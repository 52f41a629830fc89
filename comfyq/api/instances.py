"""Instance endpoint: health, queue depths and running jobs for operators."""
from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import abort
from redis.exceptions import RedisError

from .auth import require_role
from .parser import Blueprint
from ..db.extensions import get_redis
from ..fleet.instances import describe
from .schemas import InstancesSchema

bp = Blueprint("instances", __name__, url_prefix="/v1/instances", description="ComfyUI instances")


@bp.route("")
@bp.response(200, InstancesSchema)
def instances() -> dict[str, Any]:
    """List every instance: health, queue depth, running job; and the shared queue (admins and services)."""
    require_role("admin", "service")
    try:
        return describe(get_redis(), current_app.config["INSTANCES"])
    except RedisError as exc:
        abort(503, message=f"Redis is unreachable: {exc}")
