"""Batch endpoints: many jobs from one template, all validated before any is created."""
from __future__ import annotations

from typing import Any

from flask import current_app

from ..submission.batches import create_batch, get_batch, summary
from ..db.models import Batch
from .auth import current_user
from .jobs import present_page
from .parser import Blueprint
from ..accounts.ratelimit import check_rate
from .schemas import BatchCreateSchema, BatchSchema

bp = Blueprint("batches", __name__, url_prefix="/v1/batches", description="Run a template over many params")


def present_batch(batch: Batch) -> dict[str, Any]:
    """Return the client's view of a batch."""
    return {"id": batch.id, "template": batch.template, "template_version": batch.template_version,
            "created_at": batch.created_at, **summary(batch),
            "jobs": present_page(batch.jobs)}


@bp.route("", methods=["POST"])
@bp.arguments(BatchCreateSchema, example={"template": "txt2img", "params": {"prompt": "a lighthouse at dusk"},
                                           "grid": {"steps": [4, 8], "seed": [1, 2]}})
@bp.response(202, BatchSchema)
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Create one job per variant or grid point; nothing is created unless every member is valid."""
    check_rate(current_user())
    return present_batch(create_batch(body, current_app.config["MAX_BATCH_JOBS"], current_user()))


@bp.route("/<batch_id>")
@bp.response(200, BatchSchema)
def batch(batch_id: str) -> dict[str, Any]:
    """Return a batch: overall status, counts by status, and every job with its outputs."""
    return present_batch(get_batch(batch_id, current_user()))
