"""A job's soft time limit, counted from its prompt's own ``execution_start``.

Celery's soft limit counts from the moment a task begins in the pool child; a
prompt placed ahead (comfyq.worker.placement) may have begun to execute earlier,
the moment the one before it ended. The runner checks this deadline at each
poll, so the limit counts from when ComfyUI started the prompt and from nothing
else: not from its wait behind a running prompt, not from its task's start.
Celery's hard limit stays the backstop.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded


def execution_start(data: dict[str, Any], received: float | None = None) -> float:
    """Return when a prompt began, in epoch seconds: its message's ``timestamp`` (ms), else when it came."""
    stamp = data.get("timestamp")
    if isinstance(stamp, (int, float)) and stamp > 0:
        return float(stamp) / 1000.0
    return time.time() if received is None else received


def history_start(entry: dict[str, Any]) -> float | None:
    """Return when a finished prompt began, from its history's status messages, or None."""
    for message in ((entry.get("status") or {}).get("messages") or ()):
        if isinstance(message, list) and len(message) == 2 and message[0] == "execution_start" \
                and isinstance(message[1], dict):
            return execution_start(message[1])
    return None


def as_datetime(seconds: float) -> datetime:
    """Return epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, timezone.utc)


class SoftDeadline:
    """The soft limit of one run, counted from its prompt's execution_start once that is known."""

    def __init__(self, soft: float | None) -> None:
        self.soft = soft
        self.began: float | None = None  # epoch seconds

    def begin(self, at: float) -> None:
        """Start counting from ``at`` (epoch seconds), the first time only."""
        if self.began is None:
            self.began = at

    def left(self, now: float | None = None) -> float | None:
        """Return the seconds left, or None while the prompt has not begun or no limit applies."""
        if self.soft is None or self.began is None:
            return None
        return self.began + self.soft - (time.time() if now is None else now)

    def check(self, now: float | None = None) -> None:
        """Raise SoftTimeLimitExceeded once the prompt has run for its soft limit."""
        left = self.left(now)
        if left is not None and left <= 0:
            raise SoftTimeLimitExceeded(f"soft time limit ({self.soft:g} s) exceeded since execution_start")
