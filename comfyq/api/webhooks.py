"""Webhook endpoints: your default webhook and signing secret; the deliveries shown on a job."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView

from ..webhooks import subscriptions
from ..db.models import Job, WebhookDelivery
from ..webhooks.deliveries import deliveries_of
from .auth import current_user
from .parser import Blueprint
from .webhook_schemas import WebhookAccountSchema, WebhookSettingsSchema

bp = Blueprint("webhooks", __name__, url_prefix="/v1/account/webhook",
               description="Your default webhook and the secret its deliveries are signed with (Standard Webhooks: "
                           "webhook-id, webhook-timestamp, webhook-signature; Comfyq-Signature is deprecated)")


def present_delivery(delivery: WebhookDelivery) -> dict[str, Any]:
    """Return one delivery and its attempts."""
    return {"id": delivery.id, "event": delivery.event, "state": delivery.state,
            "created_at": delivery.created_at,
            "next_attempt_at": delivery.next_attempt_at if delivery.state == "pending" else None,
            "finished_at": delivery.finished_at,
            "attempts": [{"number": a.number, "at": a.at, "status_code": a.status_code, "error": a.error,
                          "duration_ms": a.duration_ms} for a in delivery.attempt_log]}


def present_webhook(job: Job, deliveries: list[WebhookDelivery] | None = None) -> dict[str, Any] | None:
    """Return a job's webhook with its deliveries (read now unless given), or None if it has none."""
    if job.webhook_url is None:
        return None
    if deliveries is None:
        deliveries = deliveries_of([job.id]).get(job.id, [])
    return {"url": job.webhook_url, "events": job.webhook_events or [],
            "deliveries": [present_delivery(d) for d in deliveries]}


@bp.route("")
class AccountWebhook(MethodView):
    """Your default webhook."""

    @bp.response(200, WebhookAccountSchema)
    def get(self) -> dict[str, Any]:
        """Show your default webhook and your signing secret (made on first need)."""
        return subscriptions.describe(current_user())

    @bp.arguments(WebhookSettingsSchema, example={"url": "https://hooks.example.com/comfyq", "events": ["started"]})
    @bp.response(200, WebhookAccountSchema)
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Set the webhook your jobs get when they name no webhook_url (jobs already submitted keep theirs)."""
        return subscriptions.set_default(current_user(), body["url"], body["events"])

    @bp.response(204)
    def delete(self) -> None:
        """Drop your default webhook; your secret stays, so deliveries under way still verify."""
        subscriptions.clear_default(current_user())


@bp.route("/secret", methods=["POST"])
@bp.response(200, WebhookAccountSchema)
def rotate() -> dict[str, Any]:
    """Replace your signing secret and show the new one; every delivery from now on is signed with it."""
    return subscriptions.rotate_secret(current_user())
