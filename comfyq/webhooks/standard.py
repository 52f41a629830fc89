"""Standard Webhooks signatures (https://www.standardwebhooks.com): comfyq's secrets and the three headers.

A secret reads ``whsec_`` and the standard base64 of 32 random bytes, the HMAC
key. Each attempt carries ``webhook-id`` (the delivery's id, the same on every
retry), ``webhook-timestamp`` (the attempt's unix seconds) and
``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256 of
``f"{id}.{timestamp}."`` followed by the exact body bytes; several signatures,
if ever sent, are separated by spaces. A receiver verifies them with the
``standardwebhooks`` package: ``Webhook(secret).verify(body, headers)``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

PREFIX = "whsec_"
KEY_BYTES = 32
ID, TIMESTAMP, SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"
VERSION = "v1"


def new_secret() -> str:
    """Return a fresh secret: ``whsec_`` and the standard base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def key(secret: str) -> bytes:
    """Return the HMAC key a ``whsec_`` secret stands for; raise ValueError if it is not standard base64."""
    if not secret.startswith(PREFIX):
        raise ValueError(f"a webhook secret starts with {PREFIX}")
    try:
        found = base64.b64decode(secret[len(PREFIX):], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"a webhook secret is {PREFIX} and standard base64: {exc}") from None
    if not found:
        raise ValueError("a webhook secret may not be empty")
    return found


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Return one ``v1,<base64>`` signature of ``body`` sent as ``message_id`` at ``timestamp``."""
    mac = hmac.new(key(secret), f"{message_id}.{int(timestamp)}.".encode() + body, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(mac).decode()}"


def headers(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Return the three Standard Webhooks headers of one attempt at ``timestamp`` (default: now)."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return {ID: message_id, TIMESTAMP: str(timestamp),
            SIGNATURE: signature(secret, message_id, timestamp, body)}
