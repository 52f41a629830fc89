"""The dashboard's work figures: pending jobs and fair-share order, recent jobs, failing webhooks, credits today."""
from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import func, or_, select

from ..accounts.users import visible_to
from ..db.extensions import db
from ..db.models import Job, LedgerEntry, User, WebhookDelivery
from ..db.timestamps import isoformat, utcnow
from ..jobs.positions import rotation_from_db

RECENT = 12  # jobs in the recent list
FAILING = 10  # webhook deliveries listed
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")


def _names(ids: set[str]) -> dict[str, str]:
    """Return user id → name for ``ids``."""
    return dict(db.session.execute(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}


def pending_of(user: User) -> list[dict[str, Any]]:
    """Return each user with pending jobs (that ``user`` may see), in the order fair share serves them next."""
    places = rotation_from_db()
    visible = set(db.session.scalars(select(User.id).where(User.id.in_(places), visible_to(user, User.id)))) \
        if places else set()
    names = _names(visible)
    order = sorted(visible, key=lambda uid: places[uid][0])
    return [{"user": names.get(uid, uid), "pending": places[uid][2], "weight": places[uid][1], "turn": turn}
            for turn, uid in enumerate(order, 1)]


def recent_jobs(user: User, output_url: Callable[[str, str], str]) -> list[dict[str, Any]]:
    """Return the latest jobs ``user`` may see: owner, state, progress, error and image outputs' URLs."""
    jobs = list(db.session.scalars(select(Job).where(visible_to(user, Job.user_id))
                                   .order_by(Job.created_at.desc()).limit(RECENT)))
    names = _names({job.user_id for job in jobs if job.user_id})
    return [{
        "id": job.id, "user": names.get(job.user_id or "", None), "status": job.status, "instance": job.instance,
        "template": job.template, "fraction": float((job.progress or {}).get("fraction") or 0.0),
        "error": (job.error or {}).get("message") if job.status != "cancelled" else None,
        "created_at": isoformat(job.created_at),
        "finished_at": isoformat(job.finished_at) if job.finished_at else None,
        "thumbnails": [output_url(job.id, o.name) for o in job.outputs
                       if o.content_type in IMAGE_TYPES and o.expired_at is None][:4],
    } for job in jobs]


def failing_webhooks(user: User) -> list[dict[str, Any]]:
    """Return the latest deliveries that failed for good or are being retried after a failure."""
    rows = db.session.scalars(select(WebhookDelivery).where(
        or_(WebhookDelivery.state.in_(("failed", "refused")),
            (WebhookDelivery.state == "pending") & (WebhookDelivery.attempts > 0)),
        visible_to(user, WebhookDelivery.user_id)).order_by(WebhookDelivery.created_at.desc()).limit(FAILING))
    shown = []
    for delivery in rows:
        last = delivery.attempt_log[-1] if delivery.attempt_log else None
        shown.append({"id": delivery.id, "job_id": delivery.job_id, "event": delivery.event, "url": delivery.url,
                      "state": delivery.state, "attempts": delivery.attempts,
                      "last": (f"HTTP {last.status_code}" if last.status_code else last.error) if last else None})
    return shown


def credits_today(user: User) -> int:
    """Return the credits jobs spent since midnight UTC: debits less refunds, of the users ``user`` may see."""
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    spent = db.session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.kind.in_(("debit", "refund")), LedgerEntry.created_at >= midnight,
        visible_to(user, LedgerEntry.user_id)))
    return max(0, -int(spent or 0))
