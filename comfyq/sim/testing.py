"""Helpers for tests that drive a simulator: graph builders and a websocket listener."""
from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any

import websocket


def txt2img(seed: int = 1, steps: int = 3, width: int = 64, height: int = 64, batch_size: int = 1,
            prefix: str = "sim", text: str = "a cat") -> dict[str, Any]:
    """Return the classic text-to-image graph in API format (node ids as ComfyUI's default)."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch_size}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix, "images": ["8", 0]}},
    }


def with_node_knobs(prompt: dict[str, Any], node_id: str, **knobs: Any) -> dict[str, Any]:
    """Return a copy of prompt with ``_meta.sim`` knobs on one node."""
    prompt = copy.deepcopy(prompt)
    meta = prompt[node_id].setdefault("_meta", {})
    meta.setdefault("sim", {}).update(knobs)
    return prompt


class Listener:
    """A websocket client that keeps every JSON message it receives."""

    def __init__(self, ws_url: str, client_id: str | None = None, timeout: float = 10) -> None:
        self.client_id = client_id or uuid.uuid4().hex
        self.ws = websocket.create_connection(f"{ws_url}?clientId={self.client_id}", timeout=timeout)
        self.messages: list[dict[str, Any]] = []
        self.binary: list[bytes] = []

    def recv(self, timeout: float = 10) -> dict[str, Any]:
        """Return the next JSON message (binary frames are kept aside)."""
        deadline = time.monotonic() + timeout
        while True:
            self.ws.settimeout(max(deadline - time.monotonic(), 0.001))
            frame = self.ws.recv()
            if isinstance(frame, bytes):
                self.binary.append(frame)
                continue
            message: dict[str, Any] = json.loads(frame)
            self.messages.append(message)
            return message

    def until(self, kind: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        """Receive until a message of kind whose data matches the given fields."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(deadline - time.monotonic(), 0.001))
            data = message.get("data") or {}
            if message["type"] == kind and all(data.get(k) == v for k, v in match.items()):
                return message

    def until_done(self, prompt_id: str, timeout: float = 10) -> list[dict[str, Any]]:
        """Receive until ``executing`` with node null for prompt_id; return what arrived meanwhile."""
        start = len(self.messages)
        end = {"type": "executing", "data": {"node": None, "prompt_id": prompt_id}}
        if end not in self.messages:
            self.until("executing", timeout, node=None, prompt_id=prompt_id)
        return self.messages[start:]

    def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """Return whatever arrives within seconds (nothing, ideally)."""
        got = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.append(self.recv(deadline - time.monotonic()))
            except websocket.WebSocketTimeoutException:
                break
        return got

    def close(self) -> None:
        """Close the socket."""
        self.ws.close()


def of_prompt(messages: list[dict[str, Any]], prompt_id: str) -> list[dict[str, Any]]:
    """Keep the messages about one prompt (``status`` included, since it names none)."""
    return [m for m in messages if m["type"] == "status" or (m.get("data") or {}).get("prompt_id") == prompt_id]
