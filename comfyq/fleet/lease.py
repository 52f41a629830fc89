"""A live worker's lease: its presence key, and renewal of the broker messages it holds.

Redis has no consumer acknowledgement timeouts of its own. kombu emulates them:
a message a worker holds goes back to its queue once its delivery time is older
than the visibility timeout (comfyq.jobs.broker knows where kombu keeps it).
This thread moves the time of every message its worker holds to now, every
second, so the visibility timeout can be a few seconds: a job of a crashed
worker comes back that soon, while a job that runs for an hour is never handed
out twice.
"""
from __future__ import annotations

import logging
import threading
from typing import Protocol

import redis

logger = logging.getLogger(__name__)

PRESENCE_KEY = "comfyq:worker:{}"


class Messages(Protocol):
    """The broker's side of a lease (comfyq.jobs.broker.HeldMessages)."""

    visibility: float  # seconds after which a message nobody renews goes back to its queue

    def renew(self, tags: list[str]) -> set[str]:
        """Renew the messages of ``tags``; return the tags no longer held."""


def is_alive(r: redis.Redis, instance: str) -> bool:
    """Return whether the worker owning ``instance`` renewed its lease lately."""
    return bool(r.exists(PRESENCE_KEY.format(instance)))


class Lease(threading.Thread):
    """Renew this worker's presence and its held messages until stopped."""

    def __init__(self, instance: str, hostname: str, r: redis.Redis, messages: Messages,
                 interval: float = 1.0) -> None:
        super().__init__(name=f"lease-{instance}", daemon=True)
        self.key = PRESENCE_KEY.format(instance)
        self.hostname = hostname
        self.redis = r
        self.messages = messages
        self.visibility = messages.visibility
        self.interval = interval
        self.tags: set[str] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def hold(self, delivery_tag: str) -> None:
        """Start renewing a message this worker received."""
        with self.lock:
            self.tags.add(delivery_tag)

    def renew(self) -> None:
        """Refresh the presence key and move each held message's delivery time to now."""
        ttl = max(2, int(self.visibility) - 3)
        self.redis.set(self.key, self.hostname, ex=ttl)
        with self.lock:
            tags = sorted(self.tags)
        if not tags:
            return
        gone = self.messages.renew(tags)
        with self.lock:
            self.tags -= gone

    def run(self) -> None:
        """Renew every ``interval`` seconds; Redis hiccups are logged, never fatal."""
        while not self.stopped.is_set():
            try:
                self.renew()
            except redis.RedisError as exc:
                logger.warning("lease of %s could not be renewed: %s", self.key, exc)
            self.stopped.wait(self.interval)

    def stop(self, release: bool = True) -> None:
        """Stop renewing; with ``release``, say at once that this worker is gone."""
        self.stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=10)  # a renewal under way would set the presence key again
        if release:
            try:
                self.redis.delete(self.key)
            except redis.RedisError:
                pass
