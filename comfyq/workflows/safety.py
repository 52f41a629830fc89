"""Node policy for raw workflows: blocked classes never run, an allowlist narrows further."""
from __future__ import annotations

from typing import Any, Mapping

from ..errors import InvalidRequest


class NodeRefused(InvalidRequest):
    """The workflow uses a node class that this deployment does not run."""


def check_nodes(workflow: Mapping[str, Any], blocklist: frozenset[str], allowlist: frozenset[str]) -> None:
    """Raise NodeRefused naming every node whose class is blocked or not allowed."""
    refused: dict[str, list[str]] = {}
    for node_id, node in workflow.items():
        class_type = node.get("class_type") if isinstance(node, dict) else None
        if not isinstance(class_type, str):
            continue
        if class_type in blocklist:
            refused[node_id] = [f"class_type {class_type!r} is blocked here: it can run code or write files"]
        elif allowlist and class_type not in allowlist:
            refused[node_id] = [f"class_type {class_type!r} is not on this deployment's node allowlist"]
    if refused:
        node_id, (reason,) = next(iter(refused.items()))
        more = f" (and {len(refused) - 1} more node(s))" if len(refused) > 1 else ""
        raise NodeRefused(f"node {node_id}: {reason}{more}", {"workflow": refused})
