"""A stand-in for the Celery app: what comfyq.jobs.broker would send, recorded instead."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any


class FakeCelery:
    """Record ``send_task`` and ``control.revoke`` calls; ``failing`` makes both raise it."""

    def __init__(self, conf: Any = None, failing: BaseException | None = None) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.revoked: list[str] = []
        self.conf = conf or SimpleNamespace(broker_transport_options={}, task_queues=[])
        self.failing = failing
        self.control = SimpleNamespace(revoke=self._revoke)

    def send_task(self, name: str, **options: Any) -> None:
        if self.failing is not None:
            raise self.failing
        self.sent.append((name, options))

    def _revoke(self, task_id: str) -> None:
        if self.failing is not None:
            raise self.failing
        self.revoked.append(task_id)
