"""comfyq's own figures in a worker's ``inspect stats`` (Flower's worker page and ``/api/workers``).

Under the ``comfyq`` key: the instance, its health and intake (set by the
guard, comfyq.worker.guard), the job this worker runs, and the admission caps
with how much of them is used: ``global_used`` of ``global_cap`` jobs queued or
running (``COMFYQ_MAX_ADMITTED``, 0: no cap), ``per_user_cap``
(``COMFYQ_MAX_RUNNING_PER_USER``, before role and user overrides) and
``pending``, the jobs held back by those caps.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, ClassVar

from celery import bootsteps
from celery.worker import state as worker_state
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from ..accounts.limits import ADMITTED_STATUSES, count
from .intake import IntakeStep

logger = logging.getLogger(__name__)
FRESH_FOR = 1.0  # seconds a count of the database is reused: Flower inspects every worker every few seconds


def running_job() -> str | None:
    """Return the id of the job this worker runs now (a job's task id is its id), or None."""
    ids = sorted(request.id for request in list(worker_state.active_requests))
    return ids[0] if ids else None


def admission_figures(config: Any) -> dict[str, Any]:
    """Return the caps and what uses them, counted in the database (needs an app context)."""
    return {"global_cap": int(config["MAX_ADMITTED"]), "global_used": count(None, ADMITTED_STATUSES),
            "per_user_cap": int(config["MAX_RUNNING_PER_USER"]), "pending": count(None, ("pending",))}


class FiguresStep(bootsteps.StartStopStep):
    """A consumer bootstep whose ``info`` puts comfyq's figures in ``inspect stats``."""

    requires = ("celery.worker.consumer.tasks:Tasks",)
    flask_app: ClassVar[Flask | None] = None
    instance: ClassVar[str | None] = None
    counted: ClassVar[tuple[float, dict[str, Any]]] = (0.0, {})
    lock = threading.Lock()

    @classmethod
    def configure(cls, flask_app: Flask, instance: str | None = None) -> None:
        """Say, before the worker starts, which app's database to count and which instance the worker owns."""
        cls.flask_app, cls.instance = flask_app, instance

    @classmethod
    def admission(cls) -> dict[str, Any]:
        """Return the admission figures, counted at most once per ``FRESH_FOR`` seconds."""
        with cls.lock:
            at, figures = cls.counted
            if time.monotonic() - at < FRESH_FOR or cls.flask_app is None:
                return figures
            try:
                with cls.flask_app.app_context():
                    figures = admission_figures(cls.flask_app.config)
            except SQLAlchemyError as exc:  # stats must answer anyway; say why the counts are missing
                logger.warning("could not count jobs for the worker's stats: %s", exc)
                figures = {"figures_error": str(exc).splitlines()[0][:200]}
            cls.counted = (time.monotonic(), figures)
            return figures

    def info(self, c: Any) -> dict[str, Any]:
        """Return the ``comfyq`` block of this worker's stats."""
        cls = type(self)
        shown: dict[str, Any] = {"instance": cls.instance}
        if cls.instance is not None:
            shown.update({"intake": "unknown", **IntakeStep.status, "running_job": running_job()})
        return {"comfyq": {**shown, **cls.admission()}}
