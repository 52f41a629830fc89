"""The webhooks queue's task, ``comfyq.deliver_webhook``, which ``comfyq webhooks`` runs.

One attempt per message (comfyq.webhooks.attempts). While the receiver fails,
the next attempt is a fresh message with the attempt's countdown
(comfyq.jobs.broker); the worker holds it, renewed by its lease, until it is
due. The delivery row counts the attempts, so Celery never retries the task.
"""
from __future__ import annotations

import logging

from celery import shared_task
from sqlalchemy.exc import SQLAlchemyError

from . import attempts
from ..db.extensions import db
from ..jobs import broker

logger = logging.getLogger(__name__)
BUSY_DATABASE_WAIT = 5.0  # seconds before a delivery the database could not take is tried again


@shared_task(name=broker.DELIVER_WEBHOOK, ignore_result=True)
def deliver_webhook(delivery_id: str) -> None:
    """Send one webhook delivery; while its receiver fails, send its next attempt for later."""
    try:
        countdown = attempts.attempt(delivery_id)
    except SQLAlchemyError as exc:  # the database is busy or away: the delivery is as it was
        db.session.rollback()
        logger.warning("webhook delivery %s: the database failed (%s); trying again", delivery_id, exc)
        countdown = BUSY_DATABASE_WAIT
    if countdown is not None:
        broker.send_delivery(delivery_id, countdown)
