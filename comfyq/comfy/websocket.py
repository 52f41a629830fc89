"""ComfyUI's websocket: connection, timed receive and message decoding."""
from __future__ import annotations

import json
import logging
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import websocket

from .errors import ComfyUnreachable

logger = logging.getLogger(__name__)

#: Seconds to wait for the server's answer to our close frame.
CLOSE_TIMEOUT = 1.0


@dataclass(frozen=True)
class Event:
    """One JSON message from the server."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_id(self) -> str | None:
        """Return the prompt the message concerns, if any."""
        value = self.data.get("prompt_id")
        return value if isinstance(value, str) else None


def decode_frame(frame: str | bytes) -> Event | None:
    """Decode one websocket frame; None for binary previews and anything malformed."""
    if not isinstance(frame, str) or not frame:
        return None  # binary frames carry previews: a 4-byte event type, then bytes
    try:
        message = json.loads(frame)
    except ValueError:
        logger.warning("ignoring a websocket frame that is not JSON: %.80r", frame)
        return None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        logger.warning("ignoring a websocket message without a type: %.80r", frame)
        return None
    data = message.get("data")
    return Event(message["type"], data if isinstance(data, dict) else {})


def websocket_url(base_url: str, client_id: str) -> str:
    """Return the ws:// (or wss://) URL of a server's websocket for a client id."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + "/ws"
    return urlunsplit((scheme, parts.netloc, path, f"clientId={quote(client_id)}", ""))


class EventSocket:
    """A websocket to one server, read with a timeout so the caller can do other work."""

    def __init__(self, url: str, connect_timeout: float) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._ws: websocket.WebSocket | None = None

    @property
    def connected(self) -> bool:
        """Tell whether the socket is open."""
        return self._ws is not None and self._ws.connected

    def connect(self) -> None:
        """Open the socket, replacing a previous one; raise ComfyUnreachable on failure."""
        self.close()
        try:
            # recv() decodes text itself (a bad frame is skipped); websocket-client's own check is pure Python,
            # byte by byte: most of what reading a prompt's messages costs.
            self._ws = websocket.create_connection(self.url, timeout=self.connect_timeout, skip_utf8_validation=True)
        except (OSError, websocket.WebSocketException) as exc:
            self._ws = None
            raise ComfyUnreachable(f"websocket cannot connect: {exc!r}", self.url) from exc
        logger.debug("websocket open: %s", self.url)

    def close(self) -> None:
        """Close the socket if open; never raise."""
        ws, self._ws = self._ws, None
        if ws is None:
            return
        try:
            ws.close(timeout=CLOSE_TIMEOUT)
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            ws.shutdown()

    def alive(self, drain: int = 100) -> bool:
        """Ping the server (connecting first if needed), drop what it sent meanwhile; return whether it is up."""
        try:
            if not self.connected:
                self.connect()
            assert self._ws is not None
            self._ws.ping()
            for _ in range(drain):  # status broadcasts nobody reads would pile up in the buffer
                if self.recv(0.01) is None:
                    break
        except (ComfyUnreachable, OSError, websocket.WebSocketException):
            self.close()
            return False
        return self.connected

    def recv(self, timeout: float) -> Event | None:
        """Wait up to timeout for one message; None if none came or it was not JSON.

        Raise ComfyUnreachable when the connection is closed or broken.
        """
        ws = self._ws
        if ws is None or not ws.connected:
            raise ComfyUnreachable("websocket is not connected", self.url)
        try:
            ws.settimeout(max(timeout, 0.001))
            opcode, payload = ws.recv_data()
        except (websocket.WebSocketTimeoutException, socket.timeout):
            return None
        except (OSError, websocket.WebSocketException) as exc:
            self.close()
            raise ComfyUnreachable(f"websocket dropped: {exc!r}", self.url) from exc
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.close()
            raise ComfyUnreachable("websocket closed by the server", self.url)
        if opcode == websocket.ABNF.OPCODE_TEXT:
            if isinstance(payload, bytes):
                try:
                    payload = payload.decode("utf-8")
                except UnicodeDecodeError:
                    return None
            return decode_frame(payload)
        return None
