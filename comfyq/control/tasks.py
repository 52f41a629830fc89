"""The control queue's tasks, which Celery beat sends (celeryconfig's ``beat_schedule``); the work is elsewhere.

``comfyq.reconcile`` repairs jobs (comfyq.control.reconciler), ``comfyq.expire_outputs``
deletes old outputs (comfyq.control.retention), and ``comfyq.resend_webhooks`` sends
again the webhook deliveries whose messages were lost (comfyq.webhooks.deliveries).

They run on the control process's thread pool (comfyq.cli.beat), where Celery enforces no
time limit: each pass is bounded by its calls' own timeouts (Redis sockets, HTTP, S3),
and the reconciler renews its lock between steps so no second pass overlaps a slow one.
"""
from __future__ import annotations

from typing import Any

from celery import shared_task

from . import reconciler, retention
from ..jobs import broker
from ..webhooks import deliveries


@shared_task(name=broker.RECONCILE, ignore_result=True)
def reconcile() -> dict[str, Any]:
    """Repair jobs whose recorded state disagrees with the broker and the workers."""
    return reconciler.reconcile()


@shared_task(name=broker.EXPIRE_OUTPUTS, ignore_result=True)
def expire_outputs() -> dict[str, Any]:
    """Delete outputs older than the retention age."""
    return retention.expire_outputs()


@shared_task(name=broker.RESEND_WEBHOOKS, ignore_result=True)
def resend_webhooks() -> dict[str, Any]:
    """Send again the webhook deliveries whose messages were lost."""
    return deliveries.resend_overdue()
