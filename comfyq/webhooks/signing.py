"""The deprecated ``Comfyq-Signature`` header: HMAC-SHA256 over a timestamp and the exact body bytes.

Deprecated: deliveries are signed per Standard Webhooks (comfyq.webhooks.standard),
and this header, sent alongside for one release, will then be removed. It reads
``t=<unix seconds>,v1=<hex digest>``, the digest being
``HMAC-SHA256(secret, f"{t}." + body)`` keyed by the secret's text (for a secret
made before Standard Webhooks, its text as then shown). A receiver checks it
with ``verify``; this module needs nothing but the standard library.
"""
from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Comfyq-Signature"
SCHEME = "v1"
TOLERANCE = 300  # seconds a signature stays acceptable: a captured request cannot be replayed later


def digest(secret: str, body: bytes, timestamp: int) -> str:
    """Return the hex HMAC-SHA256 of ``f"{timestamp}."`` followed by ``body``, keyed by ``secret``."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """Return the ``Comfyq-Signature`` header value for ``body`` sent at ``timestamp`` (default: now)."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={timestamp},{SCHEME}={digest(secret, body, timestamp)}"


def parse(header: str) -> tuple[int, list[str]] | None:
    """Return the timestamp and the v1 digests of a signature header, or None if it is malformed."""
    timestamp, digests = None, []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            if not (value.isascii() and value.isdigit()) or len(value) > 12 or timestamp is not None:
                return None
            timestamp = int(value)
        elif key == SCHEME:
            digests.append(value)
    return (timestamp, digests) if timestamp is not None and digests else None


def verify(secret: str, body: bytes | str, header: str, tolerance: float = TOLERANCE,
           now: float | None = None) -> bool:
    """Return whether ``header`` signs ``body`` with ``secret`` and is at most ``tolerance`` seconds old."""
    parsed = parse(header or "")
    if parsed is None:
        return False
    timestamp, digests = parsed
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False  # stale (or from a clock far ahead): possibly a replay
    expected = digest(secret, body.encode() if isinstance(body, str) else body, timestamp)
    # Every candidate is compared, in constant time, so timing says nothing about which one matched.
    return any([hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in digests])
