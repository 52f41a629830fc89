"""Retention: delete outputs older than ``COMFYQ_OUTPUT_RETENTION_HOURS``; their rows stay, marked expired.

Celery beat runs ``expire_outputs`` on the control queue. A job's files go
first, then its rows are marked in one UPDATE: a pass cut short in between
deletes nothing twice that matters and marks the job on the next pass.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from ..errors import StoreUnavailable
from ..db.extensions import db
from ..db.models import Output, utcnow

logger = logging.getLogger(__name__)
JOBS_PER_PASS = 500


def expire_outputs() -> dict[str, Any]:
    """Delete the files of outputs past the retention age; return the jobs whose outputs expired."""
    hours = float(current_app.config["OUTPUT_RETENTION_HOURS"])
    if not hours:  # kept for ever
        return {"expired_jobs": []}
    cutoff = utcnow() - timedelta(hours=hours)
    job_ids = list(db.session.scalars(
        select(Output.job_id).where(Output.expired_at.is_(None), Output.created_at < cutoff)
        .group_by(Output.job_id).limit(JOBS_PER_PASS)))
    store, expired = current_app.extensions["stores"].outputs, []
    for job_id in job_ids:
        try:
            store.remove_job(job_id)
        except StoreUnavailable as exc:  # kept unexpired: the next pass tries again
            logger.warning("retention: the outputs of %s stay for now: %s", job_id, exc)
            continue
        db.session.execute(update(Output).where(Output.job_id == job_id, Output.expired_at.is_(None))
                           .values(expired_at=utcnow()).execution_options(synchronize_session=False))
        db.session.commit()
        expired.append(job_id)
    if expired:
        logger.info("retention: deleted the outputs of %d jobs older than %g h", len(expired), hours)
    return {"expired_jobs": expired}
