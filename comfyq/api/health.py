"""Liveness: the database and Redis answer."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .parser import Blueprint
from ..db.extensions import db, get_redis

bp = Blueprint("health", __name__, description="Health")


class HealthSchema(Schema):
    """Whether the database and Redis answer."""

    status = fields.String(metadata={"description": "ok, or degraded when a check failed"})
    checks = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "database and redis: ok, or error: <what failed>"})


@bp.route("/healthz")
@bp.response(200, HealthSchema)
@bp.alt_response(503, schema=HealthSchema, description="the database or Redis does not answer")
def healthz() -> tuple[dict[str, Any], int]:
    """Answer 200 when the database and Redis respond, else 503 naming the one that failed."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except RedisError as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    return {"status": "ok" if ok else "degraded", "checks": checks}, 200 if ok else 503
