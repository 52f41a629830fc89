"""A job's events told as MCP progress: a percentage that only grows, and a line saying where the job is."""
from __future__ import annotations

from typing import Any, Callable

from ..client import Event

Report = Callable[[float, str], None]
"""Send one progress notification: (percent done, message)."""
NUDGE = 0.01  # the protocol wants every notification's progress above the last one's, even for a new position


def describe(event: Event) -> str | None:
    """Return the line an agent is shown for one event, or None for one that tells it nothing new."""
    data = event.data
    if event.type == "queued":
        if data.get("status") == "pending":
            return "pending: held back by a limit until a place in the queue frees up"
        position = data.get("position")
        return "queued" + (f", position {position}" if position is not None else "")
    if event.type == "started":
        return f"started on {data.get('instance')}"
    if event.type == "progress":
        node = data.get("label") or data.get("node_type") or f"node {data.get('node')}"
        steps = f" step {data['value']}/{data['max']}" if data.get("max") else ""
        return f"{node}{steps} ({data.get('nodes_done', 0)}/{data.get('nodes_total', 0)} nodes)"
    return None


class ProgressTeller:
    """Turn a job's events into progress notifications whose value never goes back."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.last = -NUDGE

    def tell(self, event: Event) -> None:
        """Report one event, if it says something."""
        message = describe(event)
        if message is None:
            return
        fraction = float(event.data.get("fraction") or 0.0) if event.type == "progress" else 0.0
        self.last = max(round(fraction * 100, 2), self.last + NUDGE)
        self.report(min(self.last, 100.0), message)

    def tell_job(self, job: dict[str, Any]) -> None:
        """Report a job as submission answered it (queued with its position, or pending)."""
        self.tell(Event(None, "queued", {"status": job.get("status"), "position": job.get("queue_position")}))
