"""A live worker's lease: its presence key, and renewal of the broker messages it holds.

Redis has no consumer acknowledgement timeouts of its own. kombu emulates them:
a delivered message sits in the ``unacked`` hash with its delivery time in the
``unacked_index`` sorted set, and any worker puts it back on its queue once that
time is older than the visibility timeout. This thread moves the time of every
message its worker holds to now, every second, so the visibility timeout can be
a few seconds: a job of a crashed worker comes back that soon, while a job that
runs for an hour is never handed out twice.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

logger = logging.getLogger(__name__)

PRESENCE_KEY = "comfyq:worker:{}"


def delivery_tag(request: Any) -> str | None:
    """Return the broker delivery tag of a Celery task request, if it has one."""
    tag = (request.delivery_info or {}).get("delivery_tag") or getattr(request.message, "delivery_tag", None)
    return str(tag) if tag else None


def is_alive(r: redis.Redis, instance: str) -> bool:
    """Return whether the worker owning ``instance`` renewed its lease lately."""
    return bool(r.exists(PRESENCE_KEY.format(instance)))


class Lease(threading.Thread):
    """Renew this worker's presence and its held messages until stopped."""

    def __init__(self, instance: str, hostname: str, broker: redis.Redis, r: redis.Redis,
                 transport_options: dict[str, Any], interval: float = 1.0) -> None:
        super().__init__(name=f"lease-{instance}", daemon=True)
        self.key = PRESENCE_KEY.format(instance)
        self.hostname = hostname
        self.broker = broker
        self.redis = r
        self.index_key = (transport_options.get("global_keyprefix", "")
                          + transport_options.get("unacked_index_key", "unacked_index"))
        self.visibility = float(transport_options.get("visibility_timeout", 3600))
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
        now = time.time()
        pipe = self.broker.pipeline(transaction=False)
        for tag in tags:
            # XX: never re-add a message that was acknowledged (or restored) meanwhile.
            pipe.zadd(self.index_key, {tag: now}, xx=True, ch=True)
        gone = {tag for tag, changed in zip(tags, pipe.execute()) if not changed}
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
