"""``comfyq flower``: Flower in this process, with every comfyq queue known up front and basic auth beyond loopback.

Flower 2.x lists on its Broker tab and in ``/api/queues/length`` only the
queues its last ``inspect active_queues`` saw a worker consume, and it inspects
the workers once, at its start, then only when asked (``?refresh=1``). Here
every queue comfyq declares (``comfy``, ``comfy.<instance>``, capability
queues, ``control``, ``webhooks``) is listed from the first page load, and the
workers are inspected every few seconds, so ``/api/workers`` carries their
``comfyq`` stats (comfyq.worker.figures) without a manual refresh.

Auth: with ``COMFYQ_FLOWER_PASSWORD`` set, Flower asks every page and API call
for basic auth (``COMFYQ_FLOWER_USER``, ``admin`` by default). Unset, Flower is
open on a loopback address (its API then stays refused, as Flower does) and,
bound beyond loopback, uses a password generated once into
``$COMFYQ_DATA_DIR/flower-password``.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from celery import Celery
from flower import command
from flower.api.tasks import GetQueueLengths
from flower.app import Flower
from flower.options import options
from flower.urls import settings
from flower.views.broker import BrokerView
from tornado.ioloop import PeriodicCallback

import celeryconfig
from ..config.exposure import is_loopback, stored_password

logger = logging.getLogger(__name__)
REFRESH_EVERY = 3.0  # seconds between Flower's inspections of every worker (stats, active queues)
PASSWORD_FILE = "flower-password"
MAX_TASKS = 1000  # tasks Flower keeps in memory unless FLOWER_MAX_TASKS says (its default, 100,000, grows without end)


@dataclass(frozen=True)
class Access:
    """Who may use Flower: ``user``/``password`` for basic auth, or nobody asked (``password`` None)."""

    user: str
    password: str | None
    source: str  # "setting", "generated" or "none"

    def basic_auth(self) -> list[str]:
        """Return Flower's ``basic_auth`` option: ``["user:password"]``, or none."""
        return [f"{self.user}:{self.password}"] if self.password else []


def access_for(address: str, user: str, password: str | None, data_dir: Path) -> Access:
    """Decide Flower's credentials for binding to ``address``: those given, generated ones, or none on loopback."""
    user = user or "admin"
    if ":" in user:
        raise SystemExit(f"COMFYQ_FLOWER_USER={user!r}: basic auth user names may not contain ':'")
    if password:
        return Access(user, password, "setting")
    if is_loopback(address):
        return Access(user, None, "none")
    return Access(user, stored_password(data_dir / PASSWORD_FILE), "generated")


def celery_for(config: Mapping[str, Any]) -> Celery:
    """Return a Celery app with comfyq's broker, queues and routes, and no tasks: all Flower needs."""
    celery = Celery("comfyq")
    celery.conf.update(celeryconfig.settings(config))
    return celery


def comfyq_queues(celery: Celery) -> list[str]:
    """Return every queue comfyq declares, in its configured order."""
    return [q.name for q in celery.conf.task_queues or () if q.name]


def with_declared(declared: Iterable[str], consumed: Iterable[str]) -> list[str]:
    """Return the declared queues, then any other a worker consumes (sorted), each once."""
    ordered = list(dict.fromkeys(declared))
    return ordered + sorted(set(consumed) - set(ordered))


class AllQueues:
    """A Flower handler mix-in: the queues shown are all comfyq's, not only those a worker consumed lately."""

    application: Any
    capp: Celery

    def get_active_queue_names(self) -> list[str]:
        """Return comfyq's queues and any other a live worker consumes."""
        consumed = {q["name"] for info in self.application.workers.values() for q in info.get("active_queues", [])}
        return with_declared(comfyq_queues(self.capp), consumed)


class BrokerPage(AllQueues, BrokerView):
    """Flower's Broker tab, listing every comfyq queue."""


class QueueLengths(AllQueues, GetQueueLengths):
    """Flower's ``/api/queues/length``, listing every comfyq queue."""


def build(celery: Celery, address: str, port: int, access: Access) -> Flower:
    """Build the Flower application with comfyq's options and handlers."""
    command.apply_env_options()  # FLOWER_* variables still work; comfyq's own choices below win
    options.address, options.port = address, port
    options.basic_auth = access.basic_auth()
    if "FLOWER_MAX_TASKS" not in os.environ:
        options.max_tasks = MAX_TASKS
    command.extract_settings()
    command.setup_logging()
    flower = Flower(capp=celery, options=options, **settings)
    # Host rules added later are matched before Flower's own list, so these replace its two handlers.
    flower.add_handlers(r".*", [(r"/broker", BrokerPage), (r"/api/queues/length", QueueLengths)])
    return flower


def describe(address: str, port: int, access: Access, data_dir: Path) -> str:
    """Return the line that says where Flower is and how to get in."""
    where = f"Flower on http://{address or '0.0.0.0'}:{port}"
    if access.source == "none":
        return (f"{where}, open to this machine; its /api answers 401 until COMFYQ_FLOWER_PASSWORD is set "
                "(then use basic auth)")
    secret = (f"the password in {data_dir / PASSWORD_FILE} (generated; set COMFYQ_FLOWER_PASSWORD to choose one)"
              if access.source == "generated" else "COMFYQ_FLOWER_PASSWORD")
    return f"{where}; pages and /api ask for basic auth: user {access.user!r} with {secret}"


def serve(celery: Celery, address: str, port: int, user: str, password: str | None, data_dir: Path) -> None:
    """Run Flower until SIGTERM or Ctrl-C."""
    access = access_for(address, user, password, data_dir)
    flower = build(celery, address, port, access)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    bound = flower.start_http_server()
    print(f"comfyq flower: {describe(address, bound, access, data_dir)}", flush=True)
    PeriodicCallback(flower.update_workers, REFRESH_EVERY * 1000).start()
    try:
        flower.start()  # inspects the workers once at once, then runs the loop
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        flower.stop()
