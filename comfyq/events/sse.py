"""Server-Sent Events: write comfyq's events (``comfyq.client.sse`` reads them back)."""
from __future__ import annotations

import json
import re


# A view's answer carrying HOLD_HEADER is held open by the ASGI layer (comfyq.asgi), which sets HOLDER_HEADER
# on every request it serves: only then may a view ask for holding.
HOLD_HEADER = "X-Comfyq-Hold"
HOLDER_HEADER = "X-Comfyq-Holder"
TYPE = re.compile(r'\{"type":"([a-z_]+)"')  # how comfyq's events begin, so most need no JSON parse


def kind_of(body: str) -> str:
    """Return the type of an event's JSON body."""
    found = TYPE.match(body)
    return found.group(1) if found else str(json.loads(body).get("type", "message"))


def render(event_id: str | None, body: str, kind: str | None = None) -> bytes:
    """Return one Server-Sent Event: its id (when it has one), its type and its JSON data."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind or kind_of(body)}\ndata: {body}\n\n".encode()
