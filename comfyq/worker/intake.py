"""Open and close a worker's intake: whether it takes jobs from the shared and capability queues.

A worker whose instance is down or stuck closes its intake so queued jobs flow
to healthy instances; it keeps consuming its own instance queue, which holds jobs
pinned to this instance and jobs sent back to reattach to their prompt here.
Changes go through Celery's ``add_consumer``/``cancel_consumer`` control commands,
which the worker's consumer thread carries out.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery import Celery, bootsteps

from ..config.settings import SHARED_QUEUE, Instance

logger = logging.getLogger(__name__)


def intake_queues(instance: Instance) -> list[str]:
    """Return the queues a healthy worker of ``instance`` takes jobs from besides its own."""
    return [SHARED_QUEUE, *(q for q in instance.queues() if q != instance.queue)]


class IntakeStep(bootsteps.StartStopStep):
    """A consumer bootstep that keeps a handle on the consumer; its health is shown by comfyq.worker.figures."""

    requires = {"celery.worker.consumer.tasks:Tasks"}
    consumer: Any = None
    pid: int | None = None  # a forked pool child has a copy of ``consumer`` it must never touch
    status: dict[str, Any] = {}

    def start(self, c: Any) -> None:
        """Remember the consumer once its task queues are set up."""
        type(self).consumer, type(self).pid = c, os.getpid()


def _local_consumer() -> Any:
    """Return the consumer if this is the worker's main process, else None."""
    return IntakeStep.consumer if IntakeStep.pid == os.getpid() else None


def consumed_queues() -> set[str] | None:
    """Return the queues this worker consumes now (None before the consumer is up, or in a child)."""
    consumer = _local_consumer()
    task_consumer = getattr(consumer, "task_consumer", None)
    if task_consumer is None:
        return None
    return {q.name for q in list(task_consumer.queues)}


def is_open() -> bool | None:
    """Return whether this worker takes shared work now (None if unknown)."""
    queues = consumed_queues()
    return None if queues is None else SHARED_QUEUE in queues


def set_open(app: Celery, hostname: str, instance: Instance, open_: bool, timeout: float = 3.0) -> None:
    """Make worker ``hostname`` start or stop taking shared work; wait for its acknowledgement."""
    consumer = _local_consumer()
    if consumer is not None and threading.current_thread() is threading.main_thread():
        # On the consumer's own thread: act directly, a control message would wait for us.
        for queue in intake_queues(instance):
            if open_:
                consumer.add_task_queue(queue)
            else:
                consumer.cancel_task_queue(queue)
    else:
        command = app.control.add_consumer if open_ else app.control.cancel_consumer
        for queue in intake_queues(instance):
            command(queue, destination=[hostname], reply=True, timeout=timeout)
    logger.warning("intake of %s %s", hostname, "opened" if open_ else "closed")
