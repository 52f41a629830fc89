"""The instance a worker process is bound to, and its per-process client."""
from __future__ import annotations

import os
import uuid

from flask import current_app

from ..comfy import ComfyClient
from ..config.settings import Instance
from ..storage.base import Store

ENV_VAR = "COMFYQ_WORKER_INSTANCE"
_clients: dict[int, ComfyClient] = {}


def bound_instance() -> Instance:
    """Return the instance this worker owns, as named by ``comfyq worker NAME``."""
    name = os.environ.get(ENV_VAR)
    instances: dict[str, Instance] = current_app.config["INSTANCES"]
    if not name or name not in instances:
        raise RuntimeError(f"{ENV_VAR}={name!r} names no configured instance ({', '.join(instances)})")
    return instances[name]


def client() -> ComfyClient:
    """Return this process's client of the bound instance (built on first use after a fork)."""
    pid = os.getpid()
    found = _clients.get(pid)
    if found is None:
        instance = bound_instance()
        _clients.clear()  # a forked child must not reuse its parent's sockets
        found = _clients[pid] = ComfyClient(
            instance.url, client_id=f"comfyq-{instance.name}-{uuid.uuid4().hex[:12]}")
    return found


def store() -> Store:
    """Return the output store."""
    return current_app.extensions["stores"].outputs
