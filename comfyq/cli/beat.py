"""``comfyq beat``: the control process, one Celery worker on the ``control`` queue with beat on a thread.

The control worker consumes the ``control`` queue alone (no GPU worker does):
beat sends it the reconciler's passes, output retention and the resend of lost
webhook deliveries on celeryconfig's schedule (comfyq.control.tasks). It holds
no lease unless it is the webhooks worker too. One process in all: beat runs on a thread (``BeatThread``), not as
the forked child ``celery worker -B`` makes, and the tasks run on a thread
pool, since no control task needs a hard time limit's child to kill; none of
the GPU worker's signal handlers is loaded here. With ``--webhooks`` (what
``comfyq up`` runs) the same process is the webhooks worker too
(comfyq.cli.webhooks_worker): one process fewer, about 95 MB.
"""
from __future__ import annotations

import importlib
import os
import socket
from typing import Any

from celery import bootsteps
from celery.beat import EmbeddedService

from ..app import worker_apps
from ..config.settings import CONTROL_QUEUE, WEBHOOK_QUEUE
from ..worker.figures import FiguresStep
from ..worker.steps import LeaseStep


class BeatThread(bootsteps.StartStopStep):
    """Run Celery beat on a thread of the worker, started and stopped with it."""

    label = "BeatThread"
    schedule: str = ""

    def create(self, w: Any) -> Any:
        """Make beat's thread, with its schedule file."""
        return EmbeddedService(w.app, thread=True, schedule_filename=self.schedule)


def control_argv(loglevel: str = "INFO", webhook_threads: int = 0) -> list[str]:
    """Return the arguments of the control worker: the control queue on a thread, and webhooks' on more if any."""
    queues = f"{CONTROL_QUEUE},{WEBHOOK_QUEUE}" if webhook_threads else CONTROL_QUEUE
    return ["worker", "-n", f"control@{socket.gethostname()}", "-Q", queues,
            "-P", "threads", "-c", str(1 + webhook_threads), "--prefetch-multiplier", "1", "-E", "-l", loglevel,
            "--without-gossip", "--without-mingle"]


def schedule_file(schedule: str | None = None) -> str:
    """Return beat's schedule file (in the data dir unless given), its folder made."""
    schedule = schedule or os.path.join(worker_apps()[0].config["DATA_DIR"], "celerybeat-schedule")
    os.makedirs(os.path.dirname(schedule), exist_ok=True)
    return schedule


def start(loglevel: str = "INFO", webhooks: bool = False) -> None:
    """Run the control worker with beat: the reconciler's schedule and its passes, and webhooks if asked (blocks)."""
    flask_app, celery_app = worker_apps()
    FiguresStep.configure(flask_app)  # the caps and the pending count in its stats, no instance
    BeatThread.schedule = schedule_file()
    celery_app.steps["worker"].add(BeatThread)
    celery_app.steps["consumer"].add(FiguresStep)
    threads = 0
    if webhooks:
        importlib.import_module(".webhooks_worker", __package__)  # its handler renews every message received
        LeaseStep.configure(flask_app.extensions["redis"])  # deliveries wait for their retry, held: see there
        celery_app.steps["consumer"].add(LeaseStep)
        threads = int(flask_app.config["WEBHOOK_CONCURRENCY"])
    celery_app.worker_main(control_argv(loglevel, threads))
