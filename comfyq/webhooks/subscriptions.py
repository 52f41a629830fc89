"""Who gets told what: a job's webhook URL and events, each user's default, and each user's signing secret.

A job names its own ``webhook_url`` (``null``: none, whatever the default), or
gets its owner's default at submission, copied onto the job so a later change
of the default leaves submitted jobs alone. The secret (comfyq.webhooks.standard)
is made on first need and kept in the clear: it is the HMAC key, so comfyq must
be able to sign with it; only its owner is ever shown it.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, NamedTuple
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy.exc import IntegrityError
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ..errors import InvalidRequest
from ..db.extensions import db
from ..db.models import Job, User, WebhookSettings, utcnow
from .addresses import Refused, check_literal
from .standard import new_secret

EVENTS = ("started", "progress")  # optional; the terminal states are always sent
ALWAYS = ("succeeded", "failed", "timed_out", "cancelled")
MAX_URL = 2048
URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")  # RFC 3986's, nothing else


class Subscription(NamedTuple):
    """The webhook a new job gets: where to, and which optional events."""

    url: str | None
    events: list[str]

    def apply(self, jobs: Iterable[Job]) -> None:
        """Copy this subscription onto ``jobs``."""
        for job in jobs:
            job.webhook_url, job.webhook_events = (self.url, list(self.events)) if self.url else (None, None)


def _refuse(field: str, problem: str) -> InvalidRequest:
    """Return the 422 for a bad webhook field."""
    return InvalidRequest(f"{field}: {problem}", {"json": {field: [problem]}})


def check_url(url: Any, field: str = "webhook_url") -> str:
    """Return ``url`` if webhooks may call it; raise InvalidRequest saying what to fix."""
    if not isinstance(url, str) or not url:
        raise _refuse(field, "give an http:// or https:// URL, e.g. https://example.com/hooks/comfyq")
    if len(url) > MAX_URL:
        raise _refuse(field, f"is {len(url)} characters long; the limit is {MAX_URL}")
    if not URL_CHARACTERS.fullmatch(url):
        raise _refuse(field, "may hold only the characters of RFC 3986 (no spaces, backslashes, double quotes or "
                             "non-ASCII letters); percent-encode the others")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises on a port that is not a number up to 65535
        # The check and the request must see the same host: refuse what two URL parsers read differently.
        agreed = (parse_url(url).host or "").strip("[]").lower() == (host or "")
    except (ValueError, LocationParseError) as exc:
        raise _refuse(field, f"is not a valid URL ({exc})") from None
    if not agreed:
        raise _refuse(field, "is ambiguous: its host reads differently to different URL parsers")
    if parts.scheme.lower() not in ("http", "https"):
        raise _refuse(field, "must start with http:// or https://")
    if not host:
        raise _refuse(field, "names no host; write e.g. https://example.com/hooks/comfyq")
    try:
        check_literal(host, current_app.config["WEBHOOK_ALLOW"])
    except Refused as exc:
        raise _refuse(field, str(exc)) from None
    return url


def check_events(events: Any, field: str = "webhook_events") -> list[str]:
    """Return the optional events asked for, each once, in a fixed order; raise InvalidRequest on others."""
    if events is None:
        return []
    if not isinstance(events, list) or any(event not in EVENTS for event in events):
        raise _refuse(field, f"give a list of {' and '.join(EVENTS)} (either or both); "
                             f"{', '.join(ALWAYS)} are always sent")
    return [event for event in EVENTS if event in events]


def for_submission(body: dict[str, Any], user: User) -> Subscription:
    """Return the webhook of a job ``user`` submits with ``body``: its own, else the user's default."""
    asked = body.get("webhook_events")
    events = check_events(asked)
    if "webhook_url" in body:
        if body["webhook_url"] is None:  # no webhook for this job, default or not
            if events:
                raise _refuse("webhook_events", "a job with \"webhook_url\": null calls no webhook; drop the events")
            return Subscription(None, [])
        return Subscription(check_url(body["webhook_url"]), events)
    default = db.session.get(WebhookSettings, user.id)
    if default is None or default.url is None:
        if events:
            raise _refuse("webhook_events", "give a webhook_url too, or set a default with PUT /v1/account/webhook")
        return Subscription(None, [])
    return Subscription(default.url, events if asked is not None else list(default.events or []))


def settings_for(user_id: str) -> WebhookSettings:
    """Return the webhook settings of a user, making them (and so the secret) on first need."""
    found = db.session.get(WebhookSettings, user_id)
    if found is not None:
        return found
    db.session.add(WebhookSettings(user_id=user_id, secret=new_secret(), events=[]))
    try:
        db.session.commit()
    except IntegrityError:  # made at the same moment by another request or delivery: use that one
        db.session.rollback()
    found = db.session.get(WebhookSettings, user_id, populate_existing=True)
    assert found is not None
    return found


def describe(user: User) -> dict[str, Any]:
    """Return a user's default webhook and secret, as only that user may see them."""
    found = settings_for(user.id)
    return {"url": found.url, "events": list(found.events or []), "secret": found.secret}


def set_default(user: User, url: str, events: list[str]) -> dict[str, Any]:
    """Make ``url`` (with ``events``) the webhook of the user's future jobs that name none."""
    url, events = check_url(url, "url"), check_events(events, "events")
    found = settings_for(user.id)
    found.url, found.events, found.updated_at = url, events, utcnow()
    db.session.commit()
    return describe(user)


def clear_default(user: User) -> None:
    """Drop the user's default webhook; the secret stays, for deliveries still under way."""
    found = db.session.get(WebhookSettings, user.id)
    if found is not None and found.url is not None:
        found.url, found.events, found.updated_at = None, [], utcnow()
        db.session.commit()


def rotate_secret(user: User) -> dict[str, Any]:
    """Replace the user's secret; every delivery sent from now on, retries included, is signed with the new one."""
    found = settings_for(user.id)
    found.secret, found.legacy_secret, found.updated_at = new_secret(), None, utcnow()
    db.session.commit()
    return describe(user)
