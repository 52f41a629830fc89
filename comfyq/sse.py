"""Read a Server-Sent Events stream (the WHATWG rules comfyq's streams need) into JSON events."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator


@dataclass
class Event:
    """One event of a comfyq stream: its log number (None for a position update), type and JSON data."""

    id: int | None
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def job_id(self) -> str | None:
        """Return the job the event is about."""
        return self.data.get("job_id")


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Yield the events of a stream given line by line; comments and retry hints are skipped."""
    kind, data, number = "message", [], None
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:  # a blank line dispatches the event gathered so far
            if data:
                yield Event(number, kind, json.loads("\n".join(data)))
            kind, data, number = "message", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id" and value.isdigit():
            number = int(value)
