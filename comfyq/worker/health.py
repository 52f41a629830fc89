"""A worker's watch over its ComfyUI: health state, measures and node catalogue, published to Redis.

States: ``healthy`` (answers HTTP and its websocket), ``unhealthy`` (failed
``failures`` checks in a row), ``stuck`` (a prompt kept running after its
interrupt), ``restarting`` (a supervised process is being replaced). Only a
healthy instance takes shared work; the worker acts on ``on_state``.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import redis

from ..workflows import published as catalogue
from ..fleet import instances
from ..comfy import ComfyClient, ComfyError
from ..comfy.websocket import EventSocket, websocket_url
from ..config.settings import Instance

logger = logging.getLogger(__name__)


class HealthMonitor(threading.Thread):
    """Every ``interval`` seconds, check the instance, decide its state and publish it."""

    def __init__(self, instance: Instance, r: redis.Redis, *, interval: float = 1.0, failures: int = 2,
                 on_state: Callable[[str], None] | None = None, on_stuck: Callable[[str], None] | None = None,
                 stuck_grace: float = 10.0, catalogue_every: float = 60.0) -> None:
        super().__init__(name=f"health-{instance.name}", daemon=True)
        self.instance = instance
        self.redis = r
        self.interval = interval
        self.failures = failures
        self.on_state = on_state
        self.on_stuck = on_stuck  # called while a stuck prompt outlives the grace (a supervised restart)
        self.stuck_grace = stuck_grace  # how long an interrupted prompt may take to stop
        self.override: str | None = None  # a state the worker knows better, e.g. "restarting"
        self.catalogue_every = catalogue_every
        self.stopped = threading.Event()
        timeout = max(0.5, min(2.0, interval * 2))
        self.client = ComfyClient(instance.url, connect_timeout=timeout, read_timeout=timeout, retries=0)
        # /object_info takes seconds on an instance with many custom nodes; it must not count as a miss.
        self.catalogue_client = ComfyClient(instance.url, connect_timeout=timeout, read_timeout=60.0, retries=0)
        self.lock = threading.Lock()  # checks also run from supervisor threads
        self.socket = EventSocket(websocket_url(instance.url, f"comfyq-health-{instance.name}"), timeout)
        self.state = ""
        self.extra: dict[str, Any] = {}  # more fields to publish, e.g. the worker's intake
        self.misses = 0
        self.last_seen: float | None = None
        self._catalogue_at = float("-inf")

    def _measure(self) -> dict[str, Any]:
        """Ask the instance for its stats and queue; raise ComfyError if it does not answer."""
        stats = self.client.system_stats()
        listing = self.client.queue()
        self._refresh_catalogue()
        devices = stats.get("devices") or [{}]
        return {"reachable": True, "websocket": self.socket.alive(),
                "version": (stats.get("system") or {}).get("comfyui_version"),
                "vram_free": devices[0].get("vram_free"),
                "comfyui_queue": len(listing["running"]) + len(listing["pending"]),
                "running": listing["running"], "pending": listing["pending"]}

    def publish_catalogue(self) -> bool:
        """Publish the instance's node catalogue now; return whether it could be read."""
        self._catalogue_at = time.monotonic()
        try:
            catalogue.publish(self.redis, self.instance.name, self.catalogue_client.object_info())
            return True
        except (ComfyError, redis.RedisError) as exc:
            logger.warning("could not publish the node catalogue of %s: %s", self.instance.name, exc)
            return False

    def _refresh_catalogue(self) -> None:
        """Every ``catalogue_every`` seconds, publish the catalogue in the background (it can take seconds)."""
        if time.monotonic() - self._catalogue_at < self.catalogue_every:
            return
        self._catalogue_at = time.monotonic()  # now, not when the thread gets to it: one thread per period
        threading.Thread(target=self.publish_catalogue, name=f"catalogue-{self.instance.name}", daemon=True).start()

    def _stuck_state(self, measures: dict[str, Any]) -> str | None:
        """Return "stuck" while the stuck prompt still occupies the instance; clear the mark once it left."""
        found = instances.stuck(self.redis, self.instance.name)
        if found is None:
            return None
        prompt, since = found
        if prompt in measures["running"] or prompt in measures["pending"]:
            if time.time() - since >= self.stuck_grace and self.on_stuck is not None:
                self.on_stuck(prompt)
            return instances.STUCK
        logger.warning("instance %s is free of prompt %s again", self.instance.name, prompt)
        instances.clear_stuck(self.redis, self.instance.name)
        return None

    def check(self) -> str:
        """Check the instance once, publish what was found, and return its state."""
        with self.lock:
            return self._check()

    def _check(self) -> str:
        """Check and publish, holding the lock."""
        try:
            measures = self._measure()
        except ComfyError as exc:
            self.misses += 1
            state = instances.UNHEALTHY if self.misses >= self.failures or not self.state else self.state
            fields: dict[str, Any] = {"reachable": False, "websocket": False, "error": str(exc)}
        else:
            self.misses = 0
            self.last_seen = time.time()
            fields = {k: v for k, v in measures.items() if k not in ("running", "pending")}
            if not measures["websocket"]:
                fields["error"], state = "the websocket does not answer", instances.UNHEALTHY
            else:
                fields["error"], state = None, self._stuck_state(measures) or instances.HEALTHY
        # During a supervised restart the old process may still answer: the worker knows better.
        state = self.override or state
        self.set_state(state, {**fields, "last_seen": self.last_seen})
        return state

    def set_state(self, state: str, fields: dict[str, Any] | None = None) -> None:
        """Tell the worker the instance's state (it may update ``extra``), then publish it."""
        if state != self.state:
            logger.warning("instance %s is %s", self.instance.name, state)
        self.state = state
        if self.on_state is not None:
            self.on_state(state)
        instances.report(self.redis, self.instance.name, {**(fields or {}), **self.extra, "state": state})

    def run(self) -> None:
        """Check until stopped; Redis hiccups and callback errors are logged, never fatal."""
        while not self.stopped.is_set():
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watch must outlive any single failure
                logger.exception("health check of %s failed", self.instance.name)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        """Stop checking and close the connections."""
        self.stopped.set()
        self.client.close()
        self.catalogue_client.close()
        self.socket.close()
