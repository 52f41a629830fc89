"""Webhook deliveries: recorded from the announcer's news, then sent to the ``webhooks`` queue.

Webhooks hear a job's news from the announcer (comfyq.events.announcer), as
the event streams read it, through two connections the app's wiring makes:
``on_news`` hears every move in the move's own transaction, so a job's end is
recorded in the very transaction that ends it and no job ends without its
delivery (so is its first start, if the job subscribed to ``started``);
``follow_run`` follows each run of a job subscribed to ``progress`` and records
the progress the runner saves, once each ``WEBHOOK_PROGRESS_EVERY`` seconds at
most. After the commit the delivery's id goes to ``comfyq.deliver_webhook``
(comfyq.webhooks.attempts sends it, signs it, retries it); a message lost on the
way is sent again by ``resend_overdue``, which beat runs on the control queue.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from flask import current_app
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..db.extensions import db
from ..events.announcer import News
from ..events.telling import outputs_told
from ..jobs import broker
from ..jobs.machine import TERMINAL, JobStatus
from ..db.models import Job, Output, WebhookAttempt, WebhookDelivery, new_id, utcnow
from ..db.timestamps import isoformat

logger = logging.getLogger(__name__)
OVERDUE = 60.0  # seconds past its due time after which a pending delivery's message counts as lost
RESEND_PER_PASS = 500


def payload(delivery_id: str, event: str, job_id: str, status: str, created: datetime,
            error: dict[str, Any] | None = None, progress: dict[str, Any] | None = None,
            outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return the JSON body of one delivery (``outputs``: a success's, as told already; None: read them)."""
    body: dict[str, Any] = {"id": delivery_id, "event": event, "job_id": job_id, "status": status,
                            "created": isoformat(created)}
    if status == JobStatus.SUCCEEDED:
        body["outputs"] = outputs if outputs is not None else outputs_told(job_id, db.session.scalars(
            select(Output).where(Output.job_id == job_id).order_by(Output.id)))
    elif status in TERMINAL:
        body["error"] = error
    if progress is not None:
        body["progress"] = progress
    return body


def record(job_id: str, user_id: str | None, event: str, status: str, url: str,
           error: dict[str, Any] | None = None, progress: dict[str, Any] | None = None,
           outputs: list[dict[str, Any]] | None = None) -> WebhookDelivery:
    """Add a pending delivery, due now, to the session (the caller commits)."""
    now = utcnow()
    delivery = WebhookDelivery(id=new_id(), job_id=job_id, user_id=user_id, event=event, url=url, state="pending",
                               attempts=0, next_attempt_at=now, created_at=now)
    delivery.payload = payload(delivery.id, event, job_id, status, now, error, progress, outputs)
    db.session.add(delivery)
    return delivery


def send(delivery_id: str) -> None:
    """Send a recorded delivery to the webhooks worker; if the broker is down, the resend pass does it later."""
    broker.send_delivery(delivery_id)


def on_news(news: News) -> Callable[[], None] | None:
    """Record, in the move's transaction, the delivery a job's end or first start owes; send it after the commit."""
    moved = news.moved
    if moved is None:  # a wait, progress or output: progress webhooks follow the run instead
        return None
    if moved.to in TERMINAL:
        event = moved.to.value
    elif moved.to is JobStatus.RUNNING and moved.came_from is not JobStatus.RUNNING:
        event = "started"
    else:
        return None
    if moved.webhook_url is None:
        return None
    if event == "started" and ("started" not in (moved.webhook_events or []) or db.session.scalar(
            select(WebhookDelivery.id).where(WebhookDelivery.job_id == moved.job_id,
                                             WebhookDelivery.event == "started").limit(1)) is not None):
        return None  # not subscribed, or a job sent back to its queue starting again
    # A success's event names its outputs, read in this transaction: the delivery tells the same list.
    delivery = record(moved.job_id, moved.user_id, event, moved.to.value, moved.webhook_url, error=moved.error,
                      outputs=news.event.get("outputs"))
    return lambda: send(delivery.id)


def follow_run(job: Job) -> Callable[[dict[str, Any]], None] | None:
    """Return what records a run's saved progress, at most once each ``WEBHOOK_PROGRESS_EVERY`` seconds.

    None if the job's webhook did not subscribe to ``progress``. The first
    comes no sooner than that long after the run starts.
    """
    if not job.webhook_url or "progress" not in (job.webhook_events or ()):
        return None
    job_id, sent_at = job.id, time.monotonic()

    def saved(state: dict[str, Any]) -> None:
        """Record and send this progress if the last one is old enough."""
        nonlocal sent_at
        now = time.monotonic()
        if now - sent_at >= current_app.config["WEBHOOK_PROGRESS_EVERY"]:
            sent_at = now
            progress(job_id, state)
    return saved


def progress(job_id: str, state: dict[str, Any]) -> None:
    """Record and send the progress of a running job subscribed to it (tried once); never raise into the run."""
    try:
        job = db.session.execute(select(Job.webhook_url, Job.webhook_events, Job.user_id, Job.status)
                                 .where(Job.id == job_id)).first()
        if job is None or job.webhook_url is None or "progress" not in (job.webhook_events or []) \
                or job.status != JobStatus.RUNNING:
            return
        _forget_progress(job_id)
        delivery = record(job_id, job.user_id, "progress", job.status, job.webhook_url, progress=dict(state))
        db.session.commit()
    except SQLAlchemyError as exc:  # progress is news, not record: the job runs on
        db.session.rollback()
        logger.warning("job %s: progress webhook not recorded: %s", job_id, exc)
        return
    send(delivery.id)


def _forget_progress(job_id: str) -> None:
    """Delete a job's settled progress deliveries (the newest one tells all), so a long job keeps one or two."""
    settled = select(WebhookDelivery.id).where(WebhookDelivery.job_id == job_id, WebhookDelivery.event == "progress",
                                               WebhookDelivery.state != "pending")
    db.session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(settled)))
    db.session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(settled))
                       .execution_options(synchronize_session=False))


def resend_overdue() -> dict[str, list[str]]:
    """Send again each pending delivery overdue by more than a minute (its message was lost); end lost progress."""
    now = utcnow()
    overdue = db.session.execute(
        select(WebhookDelivery.id, WebhookDelivery.event, WebhookDelivery.next_attempt_at)
        .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at < now - timedelta(seconds=OVERDUE))
        .order_by(WebhookDelivery.next_attempt_at).limit(RESEND_PER_PASS)).all()
    resent, expired = [], []
    for delivery_id, event, due in overdue:
        # Guarded by the due time read: a delivery something touched since is left to its own message.
        values: dict[str, Any] = {"next_attempt_at": now}
        if event == "progress":  # stale by now, and progress is never retried
            values = {"state": "failed", "finished_at": now, "next_attempt_at": None}
        moved = db.session.execute(update(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.state == "pending",
            WebhookDelivery.next_attempt_at == due).values(**values).execution_options(synchronize_session=False))
        if moved.rowcount != 1:
            db.session.rollback()
            continue
        db.session.commit()
        if event == "progress":
            expired.append(delivery_id)
        else:
            send(delivery_id)
            resent.append(delivery_id)
    if resent:
        logger.warning("webhooks: resent %d deliveries whose messages were lost", len(resent))
    return {"resent": resent, "expired_progress": expired}


def pending_count() -> int:
    """Return how many deliveries are waiting to be sent or retried (each has a broker message, or will)."""
    return db.session.scalar(select(func.count()).select_from(WebhookDelivery)
                             .where(WebhookDelivery.state == "pending")) or 0


def deliveries_of(job_ids: Iterable[str]) -> dict[str, list[WebhookDelivery]]:
    """Return the deliveries of jobs (a whole page in one query), each job's oldest first, with their attempts."""
    found: dict[str, list[WebhookDelivery]] = {}
    wanted = list(job_ids)
    if wanted:
        for delivery in db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id.in_(wanted))
                                           .order_by(WebhookDelivery.created_at, WebhookDelivery.id)):
            found.setdefault(delivery.job_id, []).append(delivery)
    return found
