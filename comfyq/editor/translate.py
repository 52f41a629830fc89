"""comfyq's job events told as ComfyUI's websocket messages, and the student's place in the queue as ``status``.

A student's events (``queued``, ``started``, ``progress``, ``output`` and the
final one) become, per prompt: ``execution_start`` and ``execution_cached``
at the start; ``progress_state`` then ``executing`` when a new node runs,
and ``progress`` with ``progress_state`` for its steps; at the end
``executed`` for each output node (the stored files, which ``/view`` serves:
outputs are only stored once the run ends), a last ``progress_state`` with
every node finished, then ``execution_success``, ``execution_error`` or
``execution_interrupted``, and ``executing`` with node null, which the editor
reads as "done". Frontend 1.27 outlines the running node and draws its bar
from ``progress_state`` alone, and keeps the last one it got after a success.
"""
from __future__ import annotations

import time
from typing import Any

Message = dict[str, Any]


def message(kind: str, data: dict[str, Any]) -> Message:
    """Return one websocket message in ComfyUI's ``{"type", "data"}`` form."""
    return {"type": kind, "data": data}


def status(queue_remaining: int, sid: str | None = None) -> Message:
    """Return ``status``: the student's place in the queue (the jobs before theirs and their own)."""
    data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": queue_remaining}}}
    if sid is not None:
        data["sid"] = sid
    return message("status", data)


def _now() -> int:
    """Return the time as ComfyUI stamps its messages: milliseconds."""
    return int(time.time() * 1000)


def _node_state(prompt_id: str, node: str, value: int, maximum: int, state: str) -> dict[str, Any]:
    """Return one node's entry of ``progress_state``, as ComfyUI 0.3.64 writes it."""
    return {"value": value, "max": maximum, "state": state, "node_id": node, "prompt_id": prompt_id,
            "display_node_id": node, "parent_node_id": None, "real_node_id": node}


class Translator:
    """Tell one student's job events as ComfyUI's messages; remembers, per prompt, the nodes run so far."""

    def __init__(self) -> None:
        self.running: dict[str, str | None] = {}  # prompt id → node now running (None: started, no node yet)
        self.nodes: dict[str, dict[str, dict[str, Any]]] = {}  # prompt id → node → its progress_state entry

    def _state(self, prompt_id: str, finish_all: bool = False, failed: bool = False) -> Message:
        """Return ``progress_state``: every node seen so far, the last one running (or all finished, or failed)."""
        nodes = self.nodes.setdefault(prompt_id, {})
        for node, entry in nodes.items():
            if finish_all or node != self.running.get(prompt_id):
                entry.update(state="finished", value=entry["max"])
            elif failed:
                entry["state"] = "error"
        return message("progress_state", {"prompt_id": prompt_id, "nodes": {n: dict(e) for n, e in nodes.items()}})

    def messages(self, event: dict[str, Any]) -> list[Message]:
        """Return the messages one logged event of the student's becomes (none for most waits)."""
        kind, prompt_id = event.get("type"), str(event.get("job_id"))
        if kind == "started":
            self.running[prompt_id] = None
            self.nodes[prompt_id] = {}
            return [message("execution_start", {"prompt_id": prompt_id, "timestamp": _now()}),
                    message("execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": _now()})]
        if kind == "progress":
            return self._progress(prompt_id, event)
        if kind == "succeeded":
            return [*self._executed(prompt_id, event.get("outputs") or []),
                    *([self._state(prompt_id, finish_all=True)] if self.nodes.get(prompt_id) else []),
                    message("execution_success", {"prompt_id": prompt_id, "timestamp": _now()}),
                    *self._over(prompt_id)]
        if kind in ("failed", "timed_out"):
            told = [self._state(prompt_id, failed=True)] if self.nodes.get(prompt_id) else []
            return [*told, self._error(prompt_id, kind, event.get("error") or {}), *self._over(prompt_id)]
        if kind == "cancelled" and prompt_id in self.running:  # never started: just gone from the queue
            node = self.running[prompt_id]
            return [message("execution_interrupted", {"prompt_id": prompt_id, "node_id": node, "node_type": None,
                                                      "executed": [], "timestamp": _now()}), *self._over(prompt_id)]
        return []

    def _progress(self, prompt_id: str, event: dict[str, Any]) -> list[Message]:
        """Return ``progress_state`` and ``executing`` for a node that just began, ``progress`` for its steps."""
        node = event.get("node")
        found: list[Message] = []
        if node is None:
            return found
        node = str(node)
        nodes = self.nodes.setdefault(prompt_id, {})
        if self.running.get(prompt_id) != node:
            self.running[prompt_id] = node
            nodes[node] = _node_state(prompt_id, node, 0, 1, "running")
            found += [self._state(prompt_id),
                      message("executing", {"node": node, "display_node": node, "prompt_id": prompt_id})]
        if event.get("max"):
            value, maximum = event.get("value") or 0, event["max"]
            nodes[node].update(value=value, max=maximum, state="running")
            found += [message("progress", {"value": value, "max": maximum, "prompt_id": prompt_id, "node": node}),
                      self._state(prompt_id)]
        return found

    @staticmethod
    def _executed(prompt_id: str, outputs: list[dict[str, Any]]) -> list[Message]:
        """Return ``executed`` for each node that stored files, naming them as ``/view`` serves them."""
        by_node: dict[str, list[dict[str, str]]] = {}
        for output in outputs:
            if not output.get("expired"):
                by_node.setdefault(str(output.get("node_id")), []).append(
                    {"filename": output.get("name"), "subfolder": prompt_id, "type": "output"})
        return [message("executed", {"node": node, "display_node": node, "output": {"images": images},
                                     "prompt_id": prompt_id}) for node, images in by_node.items()]

    def _error(self, prompt_id: str, kind: str, error: dict[str, Any]) -> Message:
        """Return ``execution_error`` for a run that failed or ran out of time, in words a student reads."""
        text = error.get("message") or ("the prompt ran past its time limit" if kind == "timed_out" else kind)
        return message("execution_error", {
            "prompt_id": prompt_id, "node_id": error.get("node_id") or self.running.get(prompt_id),
            "node_type": error.get("node_type"), "executed": [], "exception_message": text,
            "exception_type": error.get("exception_type") or error.get("type") or kind, "traceback": [],
            "current_inputs": {}, "current_outputs": {}, "timestamp": _now()})

    def _over(self, prompt_id: str) -> list[Message]:
        """Return ``executing`` with node null: the prompt is over."""
        self.running.pop(prompt_id, None)
        self.nodes.pop(prompt_id, None)
        return [message("executing", {"node": None, "prompt_id": prompt_id})]
