"""A worker's background check of its ComfyUI: health and node catalogue into Redis."""
from __future__ import annotations

import logging
import threading
import time

import redis

from . import catalogue, instances
from .comfy import ComfyClient, ComfyError
from .config import Instance

logger = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Every ``interval`` seconds, record whether the instance answers; refresh its catalogue."""

    def __init__(self, instance: Instance, r: redis.Redis, interval: float = 5.0,
                 catalogue_every: float = 60.0) -> None:
        super().__init__(name=f"heartbeat-{instance.name}", daemon=True)
        self.instance = instance
        self.redis = r
        self.interval = interval
        self.catalogue_every = catalogue_every
        self.stopped = threading.Event()
        self.client = ComfyClient(instance.url, connect_timeout=2.0, read_timeout=5.0, retries=0)
        self._catalogue_at = float("-inf")

    def beat(self) -> bool:
        """Check the instance once; return whether it answered."""
        try:
            stats = self.client.system_stats()
            if time.monotonic() - self._catalogue_at >= self.catalogue_every:
                catalogue.publish(self.redis, self.instance.name, self.client.object_info())
                self._catalogue_at = time.monotonic()
        except ComfyError as exc:
            instances.report(self.redis, self.instance.name, False, error=str(exc))
            return False
        version = (stats.get("system") or {}).get("comfyui_version")
        instances.report(self.redis, self.instance.name, True, version=version)
        return True

    def run(self) -> None:
        """Beat until stopped; Redis hiccups are logged, never fatal."""
        while not self.stopped.is_set():
            try:
                self.beat()
            except redis.RedisError as exc:
                logger.warning("heartbeat of %s could not write to Redis: %s", self.instance.name, exc)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        """Stop beating and close the client."""
        self.stopped.set()
        self.client.close()
