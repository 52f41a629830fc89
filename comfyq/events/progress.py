"""Turn ComfyUI's execution messages into a job's progress and its public events."""
from __future__ import annotations

import time
from typing import Any, Mapping


class ProgressTracker:
    """Fold one prompt's websocket messages into a progress snapshot."""

    def __init__(self, workflow: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> None:
        self.workflow = workflow
        self.labels = labels or {}
        self.state: dict[str, Any] = {
            "node": None, "node_type": None, "label": None, "value": 0, "max": 0,
            "nodes_done": 0, "nodes_total": len(workflow), "fraction": 0.0, "cached": [],
            "partial_outputs": [],
        }
        self._done: set[str] = set()

    def _class_of(self, node: Any) -> str | None:
        entry = self.workflow.get(str(node)) if node is not None else None
        return entry.get("class_type") if isinstance(entry, dict) else None

    def apply(self, kind: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """Update the snapshot from one message; return the public event, or None to drop it."""
        state = self.state
        if kind == "execution_cached":
            state["cached"] = [str(n) for n in data.get("nodes") or []]
            self._done.update(state["cached"])
            event: dict[str, Any] | None = None  # no news for a client: the fraction jumps with the next event
        elif kind == "executing" and data.get("node") is not None:
            if state["node"] is not None:
                self._done.add(str(state["node"]))
            node = str(data["node"])
            node_type = self._class_of(node)
            state.update(node=node, node_type=node_type, label=self.labels.get(node, node_type), value=0, max=0)
            event = {"type": "progress"}
        elif kind == "progress":
            state.update(value=data.get("value", 0), max=data.get("max", 0))
            event = {"type": "progress"}
        elif kind == "executed":
            node = str(data.get("node"))
            self._done.add(node)
            files = [item.get("filename") for items in (data.get("output") or {}).values()
                     if isinstance(items, list) for item in items
                     if isinstance(item, dict) and item.get("filename")]
            state["partial_outputs"].extend({"node": node, "filename": f} for f in files)
            event = {"type": "output", "node": node, "node_type": self._class_of(node), "files": files}
        else:
            return None
        state["nodes_done"] = len(self._done)
        state["fraction"] = self.fraction()
        state["updated_at"] = time.time()
        if event is not None and event["type"] == "progress":
            event.update(public_progress(state))
        return event

    def fraction(self) -> float:
        """Return how much of the graph is done: finished nodes, plus the running node's share."""
        state = self.state
        total = state["nodes_total"] or 1
        running = state["value"] / state["max"] if state["max"] and state["node"] not in self._done else 0.0
        return round(min(1.0, (len(self._done) + min(running, 1.0)) / total), 4)


def public_progress(state: Mapping[str, Any]) -> dict[str, Any]:
    """Return the fields of a ``progress`` event from a progress snapshot."""
    return {key: state.get(key) for key in
            ("node", "node_type", "label", "value", "max", "fraction", "nodes_done", "nodes_total")}
