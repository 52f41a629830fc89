"""Consumer bootsteps of comfyq's workers, beside the intake step: the lease, and a GPU worker's guard.

Each starts once, as the worker's consumer starts and before it takes a message,
runs on through the consumer restarts a lost broker connection causes, and stops
at the worker's very end (``shutdown``), once the pool has finished or handed
back its job. The process entries (comfyq.cli.gpu_worker, comfyq.cli.webhooks_worker)
configure them and add them to their Celery app's consumer blueprint.
"""
from __future__ import annotations

from typing import Any, ClassVar

import redis
from celery import bootsteps
from flask import Flask

from ..config.settings import Instance
from ..fleet.lease import Lease
from ..jobs import broker
from .guard import WorkerGuard
from .intake import IntakeStep
from .supervisor import ComfySupervisor


class LeaseStep(bootsteps.StartStopStep):
    """Run this worker's lease (comfyq.fleet.lease): its presence, and every message it holds, renewed."""

    requires = ("celery.worker.consumer.connection:Connection",)
    presence: ClassVar[str | None] = None  # the lease's name: a GPU worker's instance; None: the worker's hostname
    redis_client: ClassVar[redis.Redis | None] = None  # where the presence key lives (COMFYQ_REDIS_URL)
    lease: ClassVar[Lease | None] = None

    @classmethod
    def configure(cls, r: redis.Redis, presence: str | None = None) -> None:
        """Say, before the worker starts, where its presence key lives and under which name."""
        cls.redis_client, cls.presence = r, presence

    @classmethod
    def hold(cls, request: Any) -> None:
        """Renew a message the worker just received, a retry waiting for its countdown too, until it is acknowledged."""
        tag = broker.delivery_tag(request) if request is not None else None
        if cls.lease is not None and tag:
            cls.lease.hold(tag)

    def start(self, c: Any) -> None:
        """Start renewing, once: a consumer restarted after a lost connection finds the lease running."""
        cls = type(self)
        if cls.lease is not None:
            return
        if cls.redis_client is None:
            raise RuntimeError("LeaseStep.configure() was not called before the worker started")
        cls.lease = Lease(cls.presence or c.hostname, c.hostname, cls.redis_client, broker.held_messages(c.app))
        cls.lease.start()

    def shutdown(self, c: Any) -> None:
        """Stop renewing and say at once that this worker is gone, so others may take its jobs over."""
        if type(self).lease is not None:
            type(self).lease.stop(release=True)


class HealthStep(bootsteps.StartStopStep):
    """Run a GPU worker's guard (comfyq.worker.guard) once its consumer takes messages: health watch and intake."""

    requires = (LeaseStep, IntakeStep)
    flask_app: ClassVar[Flask | None] = None
    instance: ClassVar[Instance | None] = None
    supervisor: ClassVar[ComfySupervisor | None] = None
    guard: ClassVar[WorkerGuard | None] = None

    @classmethod
    def configure(cls, flask_app: Flask, instance: Instance, supervisor: ComfySupervisor | None = None) -> None:
        """Say, before the worker starts, which app and instance the guard watches, and its ComfyUI process."""
        cls.flask_app, cls.instance, cls.supervisor = flask_app, instance, supervisor

    def start(self, c: Any) -> None:
        """Build and start the guard, once, with the worker's lease and its consumer's Celery app."""
        cls = type(self)
        if cls.guard is not None:
            return
        if cls.flask_app is None or cls.instance is None or LeaseStep.lease is None:
            raise RuntimeError("HealthStep.configure() was not called, or the lease step did not start")
        with cls.flask_app.app_context():
            cls.guard = WorkerGuard(cls.flask_app, c.app, cls.instance, c.hostname, LeaseStep.lease, cls.supervisor)
        cls.guard.start()

    def shutdown(self, c: Any) -> None:
        """Stop the guard's watch; the lease step releases the lease after it."""
        if type(self).guard is not None:
            type(self).guard.stop()
