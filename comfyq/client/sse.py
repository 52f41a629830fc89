"""Server-Sent Events as a client reads them: comfyq's events, by the WHATWG rules a stream needs."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator


@dataclass
class Event:
    """One event of a comfyq stream: its id in the log (None for a position update), type and JSON data."""

    id: str | None
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def job_id(self) -> str | None:
        """Return the job the event is about."""
        return self.data.get("job_id")


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Yield the events of a stream given line by line; comments and retry hints are skipped."""
    kind, data, event_id = "message", [], None
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:  # a blank line dispatches the event gathered so far
            if data:
                yield Event(event_id, kind, json.loads("\n".join(data)))
            kind, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            event_id = value or None
