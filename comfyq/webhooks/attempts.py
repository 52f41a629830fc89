"""One attempt at a webhook delivery: claim it, sign and POST it, record how it went, say when to retry.

Each attempt is signed per Standard Webhooks (comfyq.webhooks.standard), its
``webhook-id`` the delivery's id and its ``webhook-timestamp`` the attempt's
time, and, for one more release, with the deprecated ``Comfyq-Signature``.

An attempt is claimed with one guarded UPDATE (the delivery still pending, its
attempt count as read, and due), which also records the attempt's row; so a
duplicate or redelivered message never sends a delivered delivery again, nor
an attempt twice, nor jumps ahead of a scheduled retry. A failed attempt is
retried after ``min(COMFYQ_WEBHOOK_BACKOFF * 2**(n-1), COMFYQ_WEBHOOK_BACKOFF_MAX)``
seconds (±10 %) while that stays within ``COMFYQ_WEBHOOK_RETRY_FOR`` of the
delivery's creation; progress is tried once. A host that resolves to an
address webhooks may not call ends the delivery ``refused``, untried.
"""
from __future__ import annotations

import functools
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import version
from typing import Any, Mapping, NamedTuple
from urllib.parse import urlsplit

import requests
import urllib3
from flask import current_app
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from . import signing, standard
from ..db.extensions import db
from ..db.models import WebhookAttempt, WebhookDelivery, aware, utcnow
from ..metrics.catalogue import WEBHOOK_ATTEMPTS
from ..metrics.recorder import count
from .addresses import Refused, resolve
from .subscriptions import settings_for
from .transport import session

logger = logging.getLogger(__name__)
EARLY = 1.0  # seconds: a message this close to its delivery's due time waits for it; one earlier is a duplicate
SNIPPET = 300  # characters of a receiver's answer kept with a failed attempt


class Keys(NamedTuple):
    """The secrets one delivery is signed with: the Standard Webhooks one, and the deprecated header's."""

    secret: str
    legacy: str


@dataclass
class Outcome:
    """How one POST went."""

    status_code: int | None = None
    error: str | None = None
    refused: bool = False

    @property
    def delivered(self) -> bool:
        """Return whether the receiver took it (any 2xx)."""
        return self.status_code is not None and 200 <= self.status_code < 300


def backoff(number: int, config: Mapping[str, Any]) -> float:
    """Return the seconds to wait after failed attempt ``number`` (1-based), jittered by ±10 %."""
    base = min(float(config["WEBHOOK_BACKOFF"]) * 2 ** min(number - 1, 62), float(config["WEBHOOK_BACKOFF_MAX"]))
    return base * random.uniform(0.9, 1.1)


def attempt(delivery_id: str) -> float | None:
    """Make the next attempt of a delivery if it is due and nobody else makes it; return the retry countdown or None."""
    config = current_app.config
    delivery = db.session.get(WebhookDelivery, delivery_id, populate_existing=True)
    now = utcnow()
    if delivery is None or delivery.state != "pending":
        return None  # delivered, failed or refused already: a duplicate message
    early = (aware(delivery.next_attempt_at) - now).total_seconds() if delivery.next_attempt_at else 0.0
    if early > EARLY:
        return None  # a duplicate: the message of the scheduled retry makes that attempt
    if early > 0:  # a timer that fired a little early; a duplicate waiting too loses the claim below
        time.sleep(early)
        now = utcnow()
    owner = settings_for(delivery.user_id) if delivery.user_id else None
    keys = Keys(owner.secret, owner.legacy_secret or owner.secret) if owner else None
    number = delivery.attempts + 1
    timeout = float(config["WEBHOOK_TIMEOUT"])
    # Until the attempt is recorded, it counts as in flight: past this, the resend pass takes the delivery up.
    claimed = db.session.execute(update(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.state == "pending",
        WebhookDelivery.attempts == delivery.attempts,
    ).values(attempts=number, next_attempt_at=now + timedelta(seconds=3 * timeout + 30))
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        db.session.rollback()
        return None
    tried = WebhookAttempt(delivery_id=delivery_id, number=number, at=now)
    db.session.add(tried)
    try:
        db.session.commit()
    except IntegrityError:  # the same attempt claimed at the same moment elsewhere
        db.session.rollback()
        return None
    started = time.monotonic()
    try:
        outcome = post(delivery, keys, config) if keys else Outcome(
            error="the job has no owner whose secret could sign it", refused=True)
    except Exception as exc:  # whatever broke, the attempt is recorded and the delivery settled
        logger.exception("webhook %s: attempt %d failed unexpectedly", delivery_id, number)
        outcome = Outcome(error=f"could not send: {type(exc).__name__}: {exc}"[:SNIPPET])
    tried.status_code, tried.error = outcome.status_code, (outcome.error or None) and outcome.error[:1024]
    tried.duration_ms = int((time.monotonic() - started) * 1000)
    return _settle(delivery, number, outcome, config)


def _settle(delivery: WebhookDelivery, number: int, outcome: Outcome, config: Mapping[str, Any]) -> float | None:
    """Record the delivery's state after attempt ``number``; return the retry countdown, or None if it is over."""
    now, countdown = utcnow(), None
    if outcome.delivered:
        state = "delivered"
    elif outcome.refused:
        state = "refused"
    elif delivery.event == "progress":
        state = "failed"  # news that is stale by the next save point: never retried
    else:
        countdown = backoff(number, config)
        deadline = aware(delivery.created_at) + timedelta(seconds=float(config["WEBHOOK_RETRY_FOR"]))
        state = "pending" if now + timedelta(seconds=countdown) <= deadline else "failed"
    values: dict[str, Any] = {"state": state, "next_attempt_at": None, "finished_at": now}
    if state == "pending":
        values = {"next_attempt_at": now + timedelta(seconds=countdown or 0)}
    settled = db.session.execute(update(WebhookDelivery).where(
        WebhookDelivery.id == delivery.id, WebhookDelivery.attempts == number).values(**values)
        .execution_options(synchronize_session=False))
    db.session.commit()  # the attempt's row with it
    count(WEBHOOK_ATTEMPTS, outcome="delivered" if outcome.delivered else "refused" if outcome.refused else "failed")
    if settled.rowcount != 1:
        return None  # a later attempt took over (this one outlived its time in flight): that one carries on
    if state != "pending":
        logger.info("webhook %s (%s of job %s) %s after %d attempt(s)", delivery.id, delivery.event,
                    delivery.job_id, state, number)
        return None
    return countdown


@functools.cache
def user_agent() -> str:
    """Return the User-Agent of deliveries (reading the installed version scans the path: once per process)."""
    return f"comfyq-webhooks/{version('comfyq')}"


def post(delivery: WebhookDelivery, keys: Keys, config: Mapping[str, Any]) -> Outcome:
    """Sign and POST a delivery to its URL, without following redirects; return how it went."""
    parts = urlsplit(delivery.url)
    host = parts.hostname or ""
    try:
        address = resolve(host, parts.port or (443 if parts.scheme == "https" else 80), config["WEBHOOK_ALLOW"])
    except Refused as exc:
        return Outcome(error=str(exc), refused=True)
    except (OSError, UnicodeError) as exc:  # socket.gaierror among them: DNS may answer next time
        return Outcome(error=f"could not resolve {host}: {exc}")
    body, timestamp = json.dumps(delivery.payload, separators=(",", ":")).encode(), int(time.time())
    headers = {"Content-Type": "application/json", "User-Agent": user_agent(),
               "Comfyq-Event": delivery.event, "Comfyq-Delivery": delivery.id,
               **standard.headers(keys.secret, delivery.id, body, timestamp),
               signing.HEADER: signing.sign(keys.legacy, body, timestamp)}
    timeout = float(config["WEBHOOK_TIMEOUT"])
    try:
        with session(address) as http:
            with http.post(delivery.url, data=body, headers=headers, timeout=timeout, allow_redirects=False,
                           stream=True) as answer:
                snippet = answer.raw.read(SNIPPET, decode_content=True).decode("utf-8", "replace").strip()
    except requests.Timeout:
        return Outcome(error=f"no answer within {timeout:g} s (COMFYQ_WEBHOOK_TIMEOUT)")
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:  # also mid-body
        return Outcome(error=f"could not connect: {_root(exc)}")
    if 200 <= answer.status_code < 300:
        return Outcome(answer.status_code)
    if answer.is_redirect:
        where = answer.headers.get("Location", "")[:200]
        return Outcome(answer.status_code, f"answered {answer.status_code}, a redirect to {where!r}: "
                                           "redirects are not followed, give the final URL")
    return Outcome(answer.status_code, f"answered {answer.status_code}" + (f": {snippet}" if snippet else ""))


def _root(exc: BaseException) -> str:
    """Return the innermost cause of a connection error, which says what went wrong."""
    seen = exc
    for _ in range(10):  # requests wraps urllib3's error, which wraps the socket's
        inner = seen.__cause__ or seen.__context__ or next(
            (arg for arg in getattr(seen, "args", ()) if isinstance(arg, BaseException)), None)
        if inner is None or inner is seen:
            break
        seen = inner
    text = str(getattr(seen, "reason", None) or seen) or type(seen).__name__
    return text[:SNIPPET]
