"""What is wrong with a workflow's nodes, and the one 422 that reports it all.

A refused workflow answers ``errors.workflow`` (node id → what to fix, in
words) and ``errors.node_errors`` (node id → ``{"class_type", "errors":
[{"type", "message", "extra_info"}]}``, shaped like ComfyUI's own ``node_errors``
so a client that reads those reads these). A ``type`` is ComfyUI's where
ComfyUI refuses the same thing (``required_input_missing``,
``invalid_input_type``, ``value_smaller_than_min``, ``value_bigger_than_max``,
``value_not_in_list``, ``return_type_mismatch``, ``bad_linked_input``),
comfyq's own otherwise (``not_an_upload``, ``unsafe_filename_prefix``,
``class_not_installed``, ``missing_class_type``, ``link_to_missing_node``…);
``extra_info`` has ``input_name`` and ``received_value`` where they apply.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import InvalidRequest

SHOWN_CHARS = 80  # longer values are cut short in messages and in received_value


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a node: its type, what to fix (without the node's name) and ComfyUI-style detail."""

    type: str
    message: str
    extra_info: Mapping[str, Any] = field(default_factory=dict)


class WorkflowInvalid(InvalidRequest):
    """The workflow cannot run; ``errors`` maps node ids to what is wrong with them."""


def shown(value: Any) -> str:
    """Return ``value`` as a message quotes it: its repr, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"


def received(value: Any) -> Any:
    """Return ``value`` as ``received_value`` carries it: scalars as they are, long strings cut, the rest shown."""
    if isinstance(value, str):
        return value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS - 1] + "…"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return shown(value)


def input_problem(kind: str, name: str, message: str, value: Any = ..., **extra: Any) -> Problem:
    """Return a problem of input ``name`` (given ``value``, unless left out), its message led by the input."""
    info: dict[str, Any] = {"input_name": name, **extra}
    if value is not ...:
        info["received_value"] = received(value)
    return Problem(kind, f"input {name!r}{message}", info)


def label(node_id: str, node: Any) -> str:
    """Return how messages name a node: ``node 3 (KSampler)``, or ``node 3`` when it has no class."""
    class_type = node.get("class_type") if isinstance(node, dict) else None
    return f"node {node_id} ({class_type})" if isinstance(class_type, str) and class_type else f"node {node_id}"


def refuse(workflow: Mapping[str, Any], problems: Mapping[str, list[Problem]]) -> WorkflowInvalid:
    """Return the 422 that reports ``problems`` (node id → problems), led by the first one."""
    node_id, found = next(iter(problems.items()))
    more = sum(map(len, problems.values())) - 1
    suffix = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    node_errors = {}
    for nid, items in problems.items():
        node = workflow.get(nid)
        class_type = node.get("class_type") if isinstance(node, dict) else None
        node_errors[nid] = {"class_type": class_type if isinstance(class_type, str) else None,
                            "errors": [{"type": p.type, "message": p.message, "extra_info": dict(p.extra_info)}
                                       for p in items]}
    return WorkflowInvalid(f"{label(node_id, workflow.get(node_id))}: {found[0].message}{suffix}",
                           {"workflow": {nid: [p.message for p in items] for nid, items in problems.items()},
                            "node_errors": node_errors})
