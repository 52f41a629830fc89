"""ComfyClient: every call comfyq makes to one ComfyUI server."""
from __future__ import annotations

import hashlib
import logging
import mimetypes
import uuid
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import quote

from . import payloads
from .errors import ComfyError, ComfyProtocolError, OutputMissing
from .websocket import EventSocket, websocket_url
from .follow import Follower, OnEvent, Poll
from .http import HttpTransport, decode_json, translated_errors

logger = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024


class ComfyClient:
    """Talk to one ComfyUI server over HTTP and its websocket, with one session and client id."""

    #: Seconds without a message about the followed prompt before asking /queue and /history.
    silence_check: float = 5.0
    #: Least seconds between /queue checks while the followed prompt waits to start.
    pending_check: float = 0.5
    #: Websocket reconnect attempts after a drop, and the first pause between them.
    reconnect_attempts: int = 6
    reconnect_backoff: float = 0.1
    #: Seconds to wait for a history entry after the server said the prompt is over.
    history_lag: float = 2.0

    def __init__(self, base_url: str, *, client_id: str | None = None,
                 connect_timeout: float = 3.05, read_timeout: float = 30.0,
                 retries: int = 3) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.http = HttpTransport(self.base_url, connect_timeout, read_timeout, retries)
        self.events = EventSocket(websocket_url(self.base_url, self.client_id), connect_timeout)

    def __repr__(self) -> str:
        return f"<ComfyClient {self.base_url} client_id={self.client_id}>"

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def connect(self) -> None:
        """Open the websocket for this client id, unless it is open already."""
        if not self.events.connected:
            self.events.connect()

    def close(self) -> None:
        """Close the websocket and the HTTP session."""
        self.events.close()
        self.http.close()

    # -- prompts ----------------------------------------------------------

    def queue_prompt(self, prompt: dict[str, Any], prompt_id: str, *,
                     extra_data: dict[str, Any] | None = None, front: bool = False,
                     number: float | None = None, allow_partial: bool = False) -> dict[str, Any]:
        """Submit a prompt under the given id; never retried, since it may have been queued."""
        if not isinstance(prompt, dict):
            # ComfyUI answers a non-object prompt with a plain-text 500.
            raise TypeError(f"prompt must be a dict in API format, not {type(prompt).__name__}")
        body: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id,
                                "prompt_id": prompt_id}
        if extra_data:
            body["extra_data"] = extra_data
        if front:
            body["front"] = True
        if number is not None:
            body["number"] = number
        response = self.http.request("POST", "/prompt", json=body, ok=(200, 400))
        if response.status_code == 400:
            raise payloads.rejection(decode_json(response), 400, response.url, prompt_id)
        answer = payloads.expect_dict(decode_json(response), response.url, "POST /prompt")
        if "prompt_id" not in answer:
            raise ComfyProtocolError("POST /prompt: no prompt_id in the answer", response.url,
                                     200, str(answer)[:500])
        node_errors = answer.get("node_errors") or {}
        if node_errors and not allow_partial:
            # The valid branches were queued anyway; take them back before refusing.
            self._withdraw(prompt_id)
            raise payloads.rejection(answer, 200, response.url, prompt_id)
        return {"prompt_id": answer["prompt_id"], "number": answer.get("number"),
                "node_errors": node_errors}

    def _withdraw(self, prompt_id: str) -> None:
        """Remove a just-queued prompt from the server, best effort."""
        try:
            self.delete_from_queue([prompt_id])
            self.interrupt(prompt_id)
        except ComfyError as exc:
            logger.warning("could not withdraw partially valid prompt %s from %s: %s",
                           prompt_id, self.base_url, exc)

    def follow(self, prompt_id: str, on_event: OnEvent | None = None, *,
               timeout: float | None = None, poll: Poll | None = None,
               poll_interval: float = 0.25, silence_check: float | None = None) -> dict[str, Any]:
        """Block until the prompt is over; return its history entry or raise how it ended.

        ``silence_check`` overrides the class default: a prompt queued by another
        client (gone now) sends this one no messages, so it is asked after sooner.
        """
        return Follower(self, prompt_id, on_event, timeout, poll, poll_interval, silence_check).run()

    def find_prompt(self, prompt_id: str) -> str:
        """Say where a prompt is: "running", "pending", "done" or "unknown"."""
        listing = self.queue()  # queue first: a prompt leaving it is already in the history
        if prompt_id in listing["running"]:
            return "running"
        if prompt_id in listing["pending"]:
            return "pending"
        return "done" if self.history(prompt_id) is not None else "unknown"

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """Return a prompt's history entry, or None while it runs or when it is unknown."""
        path = f"/history/{quote(prompt_id, safe='')}"
        body = payloads.expect_dict(self.http.json("GET", path), self.http.url(path), "history")
        entry = body.get(prompt_id)
        return entry if isinstance(entry, dict) else None

    def history_all(self, max_items: int | None = None) -> dict[str, Any]:
        """Return the server's history, newest max_items entries if given."""
        params = {"max_items": max_items} if max_items is not None else None
        body = self.http.json("GET", "/history", params=params)
        return payloads.expect_dict(body, self.http.url("/history"), "history")

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt the running prompt; only if it is prompt_id when one is given."""
        self.http.request("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})

    def delete_from_queue(self, prompt_ids: list[str]) -> None:
        """Remove pending prompts from the queue (a running one stays)."""
        self.http.request("POST", "/queue", json={"delete": list(prompt_ids)})

    def clear_queue(self) -> None:
        """Remove every pending prompt."""
        self.http.request("POST", "/queue", json={"clear": True})

    def queue(self) -> dict[str, Any]:
        """Return running and pending prompt ids, pending in run order, plus "raw"."""
        body = payloads.expect_dict(self.http.json("GET", "/queue"), self.http.url("/queue"),
                                    "queue")
        return payloads.queue_listing(body, self.http.url("/queue"))

    def queue_remaining(self) -> int:
        """Return how many prompts are running or pending."""
        body = self.http.json("GET", "/prompt")
        try:
            return int(body["exec_info"]["queue_remaining"])
        except (TypeError, KeyError, ValueError) as exc:
            raise ComfyProtocolError("GET /prompt: no exec_info.queue_remaining",
                                     self.http.url("/prompt"), 200, str(body)[:500]) from exc

    # -- files -------------------------------------------------------------

    def download(self, filename: str, subfolder: str = "", type: str = "output",
                 dest: BinaryIO | None = None) -> bytes | tuple[int, str]:
        """Fetch a file through /view: its bytes, or (size, sha256) after writing it to dest."""
        params = {"filename": filename, "subfolder": subfolder, "type": type}
        url = self.http.url("/view")
        response = self.http.request("GET", "/view", params=params, stream=True, ok=(200, 404))
        with response:
            if response.status_code == 404:
                path = f"{subfolder}/{filename}" if subfolder else filename
                raise OutputMissing(f"no {type} file {path}", response.url, 404)
            with translated_errors(url, self.http.timeout):
                if dest is None:
                    return response.content
                digest, size = hashlib.sha256(), 0
                for chunk in response.iter_content(CHUNK_SIZE):
                    dest.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        return size, digest.hexdigest()

    def has_file(self, filename: str, subfolder: str = "", type: str = "input") -> bool:
        """Say whether the server has a file, without fetching it (HEAD /view)."""
        params = {"filename": filename, "subfolder": subfolder, "type": type}
        return self.http.request("HEAD", "/view", params=params, ok=(200, 404)).status_code == 200

    def upload_image(self, data: bytes, filename: str, *, subfolder: str = "",
                     type: str = "input", overwrite: bool = False) -> dict[str, Any]:
        """Upload an image; return where the server stored it ({"name", "subfolder", "type"})."""
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        form = {"type": type, "subfolder": subfolder, "overwrite": "true" if overwrite else "false"}
        response = self.http.request("POST", "/upload/image", data=form,
                                     files={"image": (filename, data, mime)})
        answer = payloads.expect_dict(decode_json(response), response.url, "upload")
        if "name" not in answer:
            raise ComfyProtocolError("upload: no name in the answer", response.url,
                                     response.status_code, str(answer)[:500])
        return {"name": answer["name"], "subfolder": answer.get("subfolder", subfolder),
                "type": answer.get("type", type)}

    # -- server ------------------------------------------------------------

    def system_stats(self) -> dict[str, Any]:
        """Return the server's system and device facts."""
        return payloads.expect_dict(self.http.json("GET", "/system_stats"),
                                    self.http.url("/system_stats"), "system_stats")

    def object_info(self) -> dict[str, Any]:
        """Return the server's node catalogue."""
        return payloads.expect_dict(self.http.json("GET", "/object_info"),
                                    self.http.url("/object_info"), "object_info")

    def free(self, unload_models: bool = False, free_memory: bool = False) -> None:
        """Ask the server to unload models and/or free memory between prompts."""
        self.http.request("POST", "/free",
                          json={"unload_models": unload_models, "free_memory": free_memory})
