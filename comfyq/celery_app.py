"""Celery bound to the Flask app factory: every task runs in an app context; the worker processes' one app.

``celery_init_app`` gives every app built by ``create_app`` its Celery app, which
lists the task modules of each queue (workers import them as they start; the
API only sends tasks by name, through comfyq.jobs.broker). ``worker_apps`` builds,
once per process, the pair each worker process runs on: the GPU worker, the
webhooks worker, the control worker and Flower (comfyq.cli), each adding its own
bootsteps and signal handlers. ``celery -A comfyq.celery_app …`` (inspect,
Flower) finds that Celery app here as ``app``.
"""
from __future__ import annotations

import functools
import os
import warnings
from typing import Any

from celery import Celery, Task
from celery.exceptions import SecurityWarning
from flask import Flask

import celeryconfig

# The task modules of the GPU queues, the control queue and the webhooks queue.
TASK_MODULES = ("comfyq.worker.tasks", "comfyq.control.tasks", "comfyq.webhooks.tasks")


def celery_init_app(flask_app: Flask) -> Celery:
    """Create the Celery app for ``flask_app`` and store it in its extensions."""

    class FlaskTask(Task):
        """Task base that runs the task body inside the app context."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with flask_app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(flask_app.import_name, task_cls=FlaskTask)
    celery_app.conf.update(celeryconfig.settings(flask_app.config))
    celery_app.conf.include = list(TASK_MODULES)
    celery_app.set_default()
    flask_app.extensions["celery"] = celery_app
    return celery_app


@functools.cache
def worker_apps() -> tuple[Flask, Celery]:
    """Return this worker process's app, built once from the environment, and its Celery app."""
    from .app import create_app

    if os.environ.get("COMFYQ_ROOT_NOTED"):  # `comfyq up` said once that it runs as root; each worker would repeat it
        warnings.filterwarnings("ignore", category=SecurityWarning)
    flask_app = create_app()
    return flask_app, flask_app.extensions["celery"]


def __getattr__(name: str) -> Celery:
    """Give ``celery -A comfyq.celery_app`` the worker processes' Celery app, built on first use."""
    if name in ("app", "celery"):
        return worker_apps()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
