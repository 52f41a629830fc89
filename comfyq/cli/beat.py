"""``comfyq beat``: the control worker process, with Celery beat embedded.

The control worker consumes the ``control`` queue alone (no GPU worker does):
beat sends it the reconciler's passes, output retention and the resend of lost
webhook deliveries on celeryconfig's schedule (comfyq.control.tasks). It holds
no lease. Its pool children are set up like a GPU worker's (comfyq.cli.prefork);
none of the GPU worker's own signal handlers is loaded here.
"""
from __future__ import annotations

import os
import socket

from . import prefork  # noqa: F401 - its signal handlers serve this worker's pool children
from ..app import worker_apps
from ..config.settings import CONTROL_QUEUE
from ..worker.figures import FiguresStep


def control_argv(loglevel: str = "INFO", schedule: str | None = None) -> list[str]:
    """Return the arguments of the control worker: the control queue, with Celery beat embedded."""
    schedule = schedule or os.path.join(worker_apps()[0].config["DATA_DIR"], "celerybeat-schedule")
    os.makedirs(os.path.dirname(schedule), exist_ok=True)
    return ["worker", "-n", f"control@{socket.gethostname()}", "-Q", CONTROL_QUEUE, "-B", "-s", schedule,
            "-P", "prefork", "-c", "1", "--prefetch-multiplier", "1", "-E", "-l", loglevel,
            "--without-gossip", "--without-mingle"]


def start(loglevel: str = "INFO") -> None:
    """Run the control worker with beat: the reconciler's schedule and its passes (blocks)."""
    flask_app, celery_app = worker_apps()
    FiguresStep.configure(flask_app)  # the caps and the pending count in its stats, no instance
    celery_app.steps["consumer"].add(FiguresStep)
    celery_app.worker_main(control_argv(loglevel))
