"""Batch endpoints: many jobs from one template, all validated before any is created."""
from __future__ import annotations

from typing import Any

from flask import current_app

from ..submission.batches import create_batch, get_batch, summary
from ..db.models import Batch
from .auth import current_user
from .jobs import present_page
from .parser import Blueprint
from .prefer import APPLIED_DOC, PREFER_DOC, submitted_answer
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
@bp.response(202, BatchSchema, headers=APPLIED_DOC)
@bp.alt_response(200, schema=BatchSchema, headers=APPLIED_DOC, success=True,
                 description="`Prefer: wait=N` and every job ended within N seconds: the ended batch")
@bp.doc(parameters=[PREFER_DOC])
def create(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Create one job per variant or grid point; nothing is created unless every member is valid.

    With `Prefer: wait=N`, the answer waits up to N seconds for every job to end (200); else 202 as usual.
    """
    check_rate(current_user())
    batch = create_batch(body, current_app.config["MAX_BATCH_JOBS"], current_user())
    status, headers = submitted_answer([job.id for job in batch.jobs], [job.status for job in batch.jobs],
                                  f"/v1/batches/{batch.id}")
    return present_batch(batch), status, headers


@bp.route("/<batch_id>")
@bp.response(200, BatchSchema)
def batch(batch_id: str) -> dict[str, Any]:
    """Return a batch: overall status, counts by status, and every job with its outputs."""
    return present_batch(get_batch(batch_id, current_user()))
