"""The webhooks worker: a threads-pool Celery worker on the ``webhooks`` queue, with no GPU.

A retry waits in the worker that received it until its countdown is over,
unacknowledged. The broker's visibility timeout is a few seconds, after which
any worker would put such a message back on the queue and the retry would be
sent twice; so, like a GPU worker, this one runs a ``Lease`` that renews every
message it holds for as long as it holds it.
"""
from __future__ import annotations

import logging
import socket
from typing import Any

from celery.signals import task_received

from ..config.settings import WEBHOOK_QUEUE
from ..fleet.lease import Lease
from ..jobs import broker
from ..worker.entry import celery_app, flask_app

logger = logging.getLogger(__name__)
_lease: Lease | None = None


def webhooks_argv(loglevel: str = "INFO", concurrency: int | None = None) -> list[str]:
    """Return the celery worker arguments of the webhooks worker."""
    threads = concurrency or int(flask_app.config["WEBHOOK_CONCURRENCY"])
    return ["worker", "-n", f"webhooks@{socket.gethostname()}", "-Q", WEBHOOK_QUEUE, "-P", "threads",
            "-c", str(threads), "--prefetch-multiplier", "1", "-E", "-l", loglevel,
            "--without-gossip", "--without-mingle"]


def start_webhooks(loglevel: str = "INFO", concurrency: int | None = None) -> None:
    """Run the webhooks worker (blocks), renewing its messages from before the first one arrives."""
    global _lease
    argv = webhooks_argv(loglevel, concurrency)
    _lease = Lease(argv[2], argv[2], flask_app.extensions["redis"], broker.held_messages(celery_app))
    _lease.start()
    try:
        celery_app.worker_main(argv)
    finally:
        _lease.stop(release=True)


@task_received.connect
def _hold_message(request: Any = None, **_: Any) -> None:
    """Renew every message this worker receives, a retry waiting for its countdown too, until it is acknowledged."""
    tag = broker.delivery_tag(request) if request is not None else None
    if _lease is not None and tag:
        _lease.hold(tag)
