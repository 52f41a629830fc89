"""``comfyq webhooks``: the webhooks worker process, a threads-pool Celery worker on the ``webhooks`` queue, no GPU.

A retry waits in the worker that received it until its countdown is over,
unacknowledged. The broker's visibility timeout is a few seconds, after which
any worker would put such a message back on the queue and the retry would be
sent twice; so, like a GPU worker, this one runs the lease bootstep
(comfyq.worker.steps.LeaseStep), which renews every message it holds for as
long as it holds it. None of the GPU worker's signal handlers is loaded here.
"""
from __future__ import annotations

import socket
from typing import Any

from celery.signals import task_received

from ..app import worker_apps
from ..config.settings import WEBHOOK_QUEUE
from ..worker.figures import FiguresStep
from ..worker.steps import LeaseStep

flask_app, celery_app = worker_apps()


def webhooks_argv(loglevel: str = "INFO", concurrency: int | None = None) -> list[str]:
    """Return the celery worker arguments of the webhooks worker."""
    threads = concurrency or int(flask_app.config["WEBHOOK_CONCURRENCY"])
    return ["worker", "-n", f"webhooks@{socket.gethostname()}", "-Q", WEBHOOK_QUEUE, "-P", "threads",
            "-c", str(threads), "--prefetch-multiplier", "1", "-E", "-l", loglevel,
            "--without-gossip", "--without-mingle"]


def start(loglevel: str = "INFO", concurrency: int | None = None) -> None:
    """Run the webhooks worker (blocks), its lease renewing its presence and its messages."""
    LeaseStep.configure(flask_app.extensions["redis"])  # named after the worker: webhooks@host
    FiguresStep.configure(flask_app)  # the caps and the pending count, no instance
    for step in (LeaseStep, FiguresStep):
        celery_app.steps["consumer"].add(step)
    celery_app.worker_main(webhooks_argv(loglevel, concurrency))


@task_received.connect
def _received(request: Any = None, **_: Any) -> None:
    """Renew every message this worker receives, a retry waiting for its countdown too, until it is acknowledged."""
    LeaseStep.hold(request)
