"""Celery bound to the Flask app factory: every task runs in an app context."""
from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask

import celeryconfig


def celery_init_app(flask_app: Flask) -> Celery:
    """Create the Celery app for ``flask_app`` and store it in its extensions."""

    class FlaskTask(Task):
        """Task base that runs the task body inside the app context."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with flask_app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(flask_app.import_name, task_cls=FlaskTask)
    celery_app.conf.update(celeryconfig.settings(flask_app.config))
    celery_app.set_default()
    flask_app.extensions["celery"] = celery_app
    return celery_app
