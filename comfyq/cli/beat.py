"""``comfyq beat``: the control process, one Celery worker on the ``control`` queue with beat on a thread.

The control worker consumes the ``control`` queue alone (no GPU worker does):
beat sends it the reconciler's passes, output retention and the resend of lost
webhook deliveries on celeryconfig's schedule (comfyq.control.tasks). It holds
no lease. One process in all: beat runs on a thread (``BeatThread``), not as
the forked child ``celery worker -B`` makes, and the tasks run on a thread
pool, since no control task needs a hard time limit's child to kill; none of
the GPU worker's signal handlers is loaded here.
"""
from __future__ import annotations

import os
import socket
from typing import Any

from celery import bootsteps
from celery.beat import EmbeddedService

from ..app import worker_apps
from ..config.settings import CONTROL_QUEUE
from ..worker.figures import FiguresStep


class BeatThread(bootsteps.StartStopStep):
    """Run Celery beat on a thread of the worker, started and stopped with it."""

    label = "BeatThread"
    schedule: str = ""

    def create(self, w: Any) -> Any:
        """Make beat's thread, with its schedule file."""
        return EmbeddedService(w.app, thread=True, schedule_filename=self.schedule)


def control_argv(loglevel: str = "INFO") -> list[str]:
    """Return the arguments of the control worker: the control queue, one task at a time on a thread."""
    return ["worker", "-n", f"control@{socket.gethostname()}", "-Q", CONTROL_QUEUE,
            "-P", "threads", "-c", "1", "--prefetch-multiplier", "1", "-E", "-l", loglevel,
            "--without-gossip", "--without-mingle"]


def schedule_file(schedule: str | None = None) -> str:
    """Return beat's schedule file (in the data dir unless given), its folder made."""
    schedule = schedule or os.path.join(worker_apps()[0].config["DATA_DIR"], "celerybeat-schedule")
    os.makedirs(os.path.dirname(schedule), exist_ok=True)
    return schedule


def start(loglevel: str = "INFO") -> None:
    """Run the control worker with beat: the reconciler's schedule and its passes (blocks)."""
    flask_app, celery_app = worker_apps()
    FiguresStep.configure(flask_app)  # the caps and the pending count in its stats, no instance
    BeatThread.schedule = schedule_file()
    celery_app.steps["worker"].add(BeatThread)
    celery_app.steps["consumer"].add(FiguresStep)
    celery_app.worker_main(control_argv(loglevel))
