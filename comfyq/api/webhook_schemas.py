"""Marshmallow schemas of webhooks: the fields a submission may carry, account defaults, deliveries on a job."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..webhooks.subscriptions import ALWAYS, EVENTS, MAX_URL
from .fields import Timestamp

URL_LENGTH = validate.Length(min=1, max=MAX_URL, error=f"give a URL of 1 to {MAX_URL} characters")
EVENT = validate.OneOf(EVENTS, error=f"must be one of {', '.join(EVENTS)}; {', '.join(ALWAYS)} are always sent")


class WebhookFieldsSchema(Schema):
    """The webhook fields of ``POST /v1/jobs`` and ``POST /v1/batches``."""

    webhook_url = fields.String(allow_none=True, validate=URL_LENGTH, metadata={
        "description": "POST signed events of this job here (http or https); absent: your account's default, "
                       "null: none"})
    webhook_events = fields.List(fields.String(validate=EVENT), metadata={
        "description": f"optional events besides the end: {', '.join(EVENTS)}"})


class WebhookSettingsSchema(Schema):
    """Body of ``PUT /v1/account/webhook``: the default webhook of your jobs."""

    url = fields.String(required=True, validate=URL_LENGTH,
                        error_messages={"required": "give the URL to call: {{\"url\": \"https://…\"}}"})
    events = fields.List(fields.String(validate=EVENT), load_default=list)


class WebhookAccountSchema(Schema):
    """Your default webhook and the secret every delivery to you is signed with."""

    url = fields.String(allow_none=True, metadata={"description": "jobs that name no webhook_url use this"})
    events = fields.List(fields.String())
    secret = fields.String(metadata={
        "description": "Standard Webhooks secret (whsec_ and the base64 HMAC-SHA256 key): verify each delivery's "
                       "webhook-id, webhook-timestamp and webhook-signature headers with it, e.g. "
                       "standardwebhooks.Webhook(secret).verify(body, headers). Deprecated, and removed in the next "
                       "release: the Comfyq-Signature header, keyed by this text (or by the base64url text a "
                       "secret made before Standard Webhooks was shown in)"})


class WebhookAttemptSchema(Schema):
    """One try at sending a delivery."""

    number = fields.Integer()
    at = Timestamp()
    status_code = fields.Integer(allow_none=True, metadata={"description": "null: no HTTP answer"})
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)


class WebhookDeliverySchema(Schema):
    """One event sent (or being sent) to a job's webhook."""

    id = fields.String(metadata={"description": "also the webhook-id (and Comfyq-Delivery) header, the same on "
                                                "every retry: dedupe by it"})
    event = fields.String()
    state = fields.String(metadata={"description": "pending, delivered, failed or refused"})
    created_at = Timestamp()
    next_attempt_at = Timestamp(allow_none=True, metadata={"description": "when it is tried next"})
    finished_at = Timestamp(allow_none=True)
    attempts = fields.List(fields.Nested(WebhookAttemptSchema))


class JobWebhookSchema(Schema):
    """A job's webhook and its deliveries."""

    url = fields.String()
    events = fields.List(fields.String())
    deliveries = fields.List(fields.Nested(WebhookDeliverySchema))
