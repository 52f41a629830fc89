"""A job's live events as a progress bar: the queue position while it waits, then node label, step and percent."""
from __future__ import annotations

import sys
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

from ..client import TERMINAL
from ..client.sse import Event


def describe(event: Event) -> str | None:
    """Return what the bar should say for an event, or None to leave it as it is."""
    data = event.data
    if event.type == "queued":
        ahead = data.get("position")
        text = f"{data.get('status', 'queued')}, {ahead} ahead" if ahead is not None else data.get("status", "queued")
        return text + starting(data.get("estimated_start"))
    if event.type == "started":
        return f"started on {data.get('instance')}"
    if event.type == "progress":
        step = f" {data['value']}/{data['max']}" if data.get("max") else ""
        return f"{data.get('label') or data.get('node_type') or 'node ' + str(data.get('node'))}{step}"
    if event.type == "output":
        return f"output of node {data.get('node')}: {', '.join(data.get('files') or [])}"
    if event.type in TERMINAL:
        message = (data.get("error") or {}).get("message")
        return f"{event.type}: {message}" if message else event.type
    return None


def starting(estimate: str | None) -> str:
    """Return ", starts in about N s" for an ISO start estimate, or "" without one."""
    if not estimate:
        return ""
    try:
        seconds = (datetime.fromisoformat(estimate) - datetime.now(timezone.utc)).total_seconds()
    except (TypeError, ValueError):
        return ""
    return f", starts in about {max(0, round(seconds))} s"


class JobProgress:
    """Show one job's events on a tqdm bar (to stderr, so stdout keeps only results)."""

    def __init__(self, job_id: str, out: TextIO | None = None) -> None:
        self.bar = tqdm(total=100, desc=f"job {job_id[:8]}: waiting", file=out or sys.stderr, leave=True,
                        bar_format="{desc} {percentage:3.0f}%|{bar:24}| {elapsed}", mininterval=0)

    def __call__(self, event: Event) -> None:
        """Move the bar for one event."""
        text = describe(event)
        if event.type == "progress" and event.data.get("fraction") is not None:
            self.bar.n = round(100 * float(event.data["fraction"]))
        elif event.type == "succeeded":
            self.bar.n = 100
        if text is not None:
            self.bar.set_description_str(f"job {str(event.job_id)[:8]}: {text}", refresh=False)
        self.bar.refresh()

    def __enter__(self) -> JobProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> Any:
        self.bar.close()
