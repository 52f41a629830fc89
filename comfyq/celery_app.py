"""Celery bound to the Flask app factory: every task runs in an app context; the worker processes' one app.

``celery_init_app`` gives every app built by ``create_app`` its Celery app, which
lists the task modules of each queue (workers import them as they start; the
API only sends tasks by name, through comfyq.jobs.broker). A worker process's
own pair of apps is built once by ``comfyq.app.worker_apps``.
"""
from __future__ import annotations

from typing import Any

from celery import Celery, Task
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
