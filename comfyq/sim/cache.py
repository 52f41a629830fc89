"""Node output caching keyed by input signature, like ComfyUI's classic cache.

A node's signature covers its class, its constant inputs, the signatures of
the nodes it links to, its IS_CHANGED fingerprint and its ``_meta.sim``
knobs. The cache keeps only entries the latest prompt could use, so an
identical re-run is served entirely from it and a changed seed re-runs the
sampler and everything after it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .files import Folders
from .images import digest
from .knobs import sim_dict
from .nodes import fingerprint


@dataclass(frozen=True)
class CacheEntry:
    """What a node produced: its outputs and its UI payload (None when it has none)."""

    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None


def signatures(prompt: dict[str, Any], folders: Folders, volatile: set[str], nonce: str) -> dict[str, str]:
    """Return every node's signature; volatile nodes (and what follows them) get unique ones."""
    done: dict[str, str] = {}
    visiting: set[str] = set()

    def sign(node_id: str) -> str:
        if node_id in done:
            return done[node_id]
        node = prompt.get(node_id)
        if not isinstance(node, dict) or node_id in visiting:
            return f"unresolvable:{node_id}"
        visiting.add(node_id)
        raw = node.get("inputs")
        inputs: dict[str, Any] = raw if isinstance(raw, dict) else {}
        parts: list[Any] = [node.get("class_type")]
        for name in sorted(inputs):
            value = inputs[name]
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                parts.append([name, "link", sign(value[0]), value[1]])
            else:
                parts.append([name, value])
        parts.append(fingerprint(str(node.get("class_type")), inputs, folders))
        parts.append(sim_dict(node.get("_meta")))
        if node_id in volatile:
            parts.append([nonce, node_id])
        visiting.discard(node_id)
        done[node_id] = digest(parts)
        return done[node_id]

    for node_id in prompt:
        sign(node_id)
    return done


class OutputCache:
    """Outputs by signature, trimmed to what the current prompt can use."""

    def __init__(self) -> None:
        self.entries: dict[str, CacheEntry] = {}

    def get(self, signature: str | None) -> CacheEntry | None:
        """Return the entry for a signature, if cached."""
        return self.entries.get(signature) if signature else None

    def put(self, signature: str, entry: CacheEntry) -> None:
        """Remember what a node produced."""
        self.entries[signature] = entry

    def keep_only(self, wanted: set[str]) -> None:
        """Drop every entry the current prompt cannot use."""
        self.entries = {k: v for k, v in self.entries.items() if k in wanted}

    def clear(self) -> None:
        """Forget everything (``POST /free`` with free_memory)."""
        self.entries.clear()
