"""Server-Sent Events: write comfyq's events, and read a stream (the WHATWG rules it needs) back."""
from __future__ import annotations

import json
import re
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


TYPE = re.compile(r'\{"type":"([a-z_]+)"')  # how comfyq's events begin, so most need no JSON parse


def kind_of(body: str) -> str:
    """Return the type of an event's JSON body."""
    found = TYPE.match(body)
    return found.group(1) if found else str(json.loads(body).get("type", "message"))


def render(event_id: str | None, body: str, kind: str | None = None) -> bytes:
    """Return one Server-Sent Event: its id (when it has one), its type and its JSON data."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind or kind_of(body)}\ndata: {body}\n\n".encode()
