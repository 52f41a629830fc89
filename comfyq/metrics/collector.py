"""The scrape: every stored and live metric family, and whether each source could be read."""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Mapping

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric as Family
from sqlalchemy.exc import SQLAlchemyError

from ..db.extensions import db
from . import live, stored
from .catalogue import SOURCE_UP, STORED

logger = logging.getLogger(__name__)
SOURCE_ERRORS = (redis.RedisError, OSError, SQLAlchemyError)


class Collector:
    """A prometheus_client collector reading Redis, the database and the broker on each scrape.

    A source that fails is reported as ``comfyq_metrics_source_up{source=…} 0``
    and its families are left out; the others are still answered.
    """

    def __init__(self, r: redis.Redis, config: Mapping[str, Any],
                 queue_depths: Callable[[], Mapping[str, int]]) -> None:
        self.redis, self.config, self.queue_depths = r, config, queue_depths

    def describe(self) -> list[Family]:
        """Describe nothing up front, so registering never scrapes."""
        return []

    def collect(self) -> Iterator[Family]:
        """Yield every family whose source answered, then each source's state."""
        sources: dict[str, bool] = {}
        found: list[Family] = []
        reads: dict[str, Callable[[], list[Family]]] = {
            "redis": lambda: [*stored.families(self.redis, STORED),
                              *live.instance_families(self.redis, self.config["INSTANCES"])],
            "database": lambda: [live.jobs_by_state(), live.running_per_user(int(self.config["METRICS_TOP_USERS"]))],
            "broker": lambda: [live.queue_depths(self.queue_depths())],
        }
        for source, read in reads.items():
            try:
                found.extend(read())
                sources[source] = True
            except SOURCE_ERRORS as exc:
                logger.warning("metrics: %s unreadable during a scrape: %s", source, exc)
                if source == "database":
                    db.session.rollback()
                sources[source] = False
        yield from found
        yield live.gauge(SOURCE_UP, {(source,): float(ok) for source, ok in sources.items()})


def render(collector: Collector) -> bytes:
    """Return the text exposition of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
