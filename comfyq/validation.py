"""Structural validation of ComfyUI API-format workflows before they are queued."""
from __future__ import annotations

from typing import Any, Mapping

from .catalogue import Catalogue
from .errors import InvalidRequest


class WorkflowInvalid(InvalidRequest):
    """The workflow cannot run; ``errors`` maps node ids to what is wrong with them."""


def _is_link(value: Any) -> bool:
    """Return whether ``value`` is a ``[node_id, output_index]`` link."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def _check_node(node_id: str, node: Any, workflow: Mapping[str, Any],
                catalogues: Mapping[str, Catalogue]) -> list[str]:
    """Return the problems of one node."""
    if not isinstance(node, dict):
        return ["node must be an object with 'class_type' and 'inputs'"]
    problems: list[str] = []
    class_type = node.get("class_type")
    if not isinstance(class_type, str) or not class_type:
        problems.append("missing 'class_type' (the node's type, e.g. 'KSampler')")
    elif catalogues:
        lacking = sorted(name for name, cat in catalogues.items() if class_type not in cat)
        if lacking:
            problems.append(f"class_type {class_type!r} is not installed on instance(s) {', '.join(lacking)}")
    inputs = node.get("inputs")
    if not isinstance(inputs, dict):
        problems.append("'inputs' must be an object of input name → value or [node_id, output_index]")
        return problems
    for name, value in inputs.items():
        if not isinstance(value, list):
            continue
        if not _is_link(value):
            # ComfyUI reads every list input as a link.
            problems.append(f"input {name!r}: a link is [node_id, output_index], "
                            "a node id string and an integer index")
            continue
        source_id, index = value
        if source_id == node_id:
            problems.append(f"input {name!r} links to itself")
            continue
        source = workflow.get(source_id)
        if not isinstance(source, dict):
            problems.append(f"input {name!r} links to node {source_id!r}, which is not in the workflow")
            continue
        if index < 0:
            problems.append(f"input {name!r} links to output {index} of node {source_id!r}; indexes start at 0")
            continue
        for inst, cat in catalogues.items():
            outputs = cat.get(source.get("class_type", ""), (None, False))[0]
            if outputs is not None and index >= len(outputs):
                problems.append(f"input {name!r} links to output {index} of node {source_id!r} "
                                f"({source.get('class_type')}), which has {len(outputs)} output(s)")
                break
    return problems


def _find_cycle(workflow: Mapping[str, Any]) -> list[str] | None:
    """Return the node ids of one link cycle, or None when the graph is acyclic."""
    edges = {node_id: [v[0] for v in node["inputs"].values() if _is_link(v)] for node_id, node in workflow.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in edges:
        if state.get(start):
            continue
        path, stack = [start], [iter(edges[start])]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(edges[nxt]))
    return None


def validate_workflow(workflow: Mapping[str, Any], catalogues: Mapping[str, Catalogue],
                      max_nodes: int = 500) -> None:
    """Raise WorkflowInvalid unless ``workflow`` is a runnable API-format graph."""
    if not workflow:
        raise WorkflowInvalid("workflow is empty: give at least one node and an output node", {})
    if len(workflow) > max_nodes:
        raise WorkflowInvalid(f"workflow has {len(workflow)} nodes; the limit is {max_nodes}", {})
    errors: dict[str, list[str]] = {}
    for node_id, node in workflow.items():
        problems = _check_node(node_id, node, workflow, catalogues)
        if problems:
            errors[node_id] = problems
    if not errors:
        cycle = _find_cycle(workflow)
        if cycle:
            errors[cycle[0]] = [f"links form a cycle: {' → '.join(cycle)}"]
    if errors:
        node_id, problems = next(iter(errors.items()))
        more = sum(map(len, errors.values())) - 1
        suffix = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
        raise WorkflowInvalid(f"node {node_id}: {problems[0]}{suffix}", {"workflow": errors})
    if catalogues and not any(
            all(cat.get(node["class_type"], ([], False))[1] for cat in catalogues.values())
            for node in workflow.values()):
        raise WorkflowInvalid(
            "workflow has no output node (e.g. SaveImage or PreviewImage), so it would produce nothing", {})
