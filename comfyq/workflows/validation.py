"""Validation of ComfyUI API-format workflows before they are queued.

Structure (objects, classes, links, cycles, an output node), ComfyUI's own input
checks against the candidate instances' published catalogues (``input_checks``)
and comfyq's file rules (``file_inputs``); every problem found is reported in
one 422 (``node_errors``). When model files are missing (a checkpoint, LoRA, VAE…
not in the catalogue's list), the 422 leads with them: ``errors.missing_models``
lists each file with the nodes and inputs that want it.
"""
from __future__ import annotations

from typing import Any, Collection, Mapping

from .published import Catalogue
from .file_inputs import file_problems
from .input_checks import input_problems, is_link
from .node_errors import Problem, WorkflowInvalid, input_problem, label, refuse

__all__ = ["WorkflowInvalid", "validate_workflow"]


def _link_problems(node_id: str, name: str, value: list[Any], workflow: Mapping[str, Any],
                   catalogues: Mapping[str, Catalogue]) -> list[Problem]:
    """Return what is wrong with one list input, which ComfyUI reads as a link."""
    if not is_link(value):
        return [input_problem("bad_linked_input", name, ": a link is [node_id, output_index], a node id string "
                              "and an integer index", value)]
    source_id, index = value
    if source_id == node_id:
        return [input_problem("link_to_itself", name, " links to itself", value)]
    source = workflow.get(source_id)
    if not isinstance(source, dict):
        return [input_problem("link_to_missing_node", name, f" links to node {source_id!r}, which is not in the "
                              "workflow", value)]
    if index < 0:
        return [input_problem("bad_output_index", name, f" links to output {index} of node {source_id!r}; "
                              "indexes start at 0", value)]
    for node_class in filter(None, (cat.get(source.get("class_type", "")) for cat in catalogues.values())):
        if index >= len(node_class.outputs):
            return [input_problem("bad_output_index", name, f" links to output {index} of node {source_id!r} "
                                  f"({source.get('class_type')}), which has {len(node_class.outputs)} output(s)",
                                  value)]
    return []


def _catalogue_problems(node: Mapping[str, Any], workflow: Mapping[str, Any],
                        catalogues: Mapping[str, Catalogue]) -> list[Problem]:
    """Return the input problems of a node on each instance, naming the instances when not all agree."""
    lacking = sorted(name for name, cat in catalogues.items() if node["class_type"] not in cat)
    if lacking:
        return [Problem("class_not_installed", f"class_type {node['class_type']!r} is not installed on "
                                               f"instance(s) {', '.join(lacking)}")]
    where: dict[tuple[str, str], tuple[Problem, list[str]]] = {}
    for instance, catalogue in catalogues.items():
        for problem in input_problems(node, workflow, catalogue):
            where.setdefault((problem.type, problem.message), (problem, []))[1].append(instance)
    return [p if len(found) == len(catalogues) else
            Problem(p.type, f"{p.message} (on instance(s) {', '.join(found)})", {**p.extra_info, "instances": found})
            for p, found in where.values()]


def _check_node(node_id: str, node: Any, workflow: Mapping[str, Any], catalogues: Mapping[str, Catalogue],
                uploads: Collection[str] | None) -> list[Problem]:
    """Return the problems of one node."""
    if not isinstance(node, dict):
        return [Problem("invalid_node", "node must be an object with 'class_type' and 'inputs'")]
    problems: list[Problem] = []
    class_type = node.get("class_type")
    if not isinstance(class_type, str) or not class_type:
        problems.append(Problem("missing_class_type", "missing 'class_type' (the node's type, e.g. 'KSampler')"))
    inputs = node.get("inputs")
    if not isinstance(inputs, dict):
        problems.append(Problem("invalid_inputs", "'inputs' must be an object of input name → value or "
                                                  "[node_id, output_index]"))
        return problems
    for name, value in inputs.items():
        if isinstance(value, list):
            problems += _link_problems(node_id, name, value, workflow, catalogues)
    problems += file_problems(node, catalogues, uploads)
    if catalogues and isinstance(class_type, str) and class_type:
        problems += _catalogue_problems(node, workflow, catalogues)
    return problems


def _find_cycle(workflow: Mapping[str, Any]) -> list[str] | None:
    """Return the node ids of one link cycle, or None when the graph is acyclic."""
    edges = {node_id: [v[0] for v in node["inputs"].values() if is_link(v)] for node_id, node in workflow.items()}
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


def _where(missing: Mapping[str, Any]) -> str:
    """Return ``; not on gpu1`` when only some instances lack a file, else nothing."""
    some = sorted({i for node in missing["nodes"] for i in node.get("instances", ())})
    return f"; not on instance(s) {', '.join(some)}" if some else ""


def missing_models(workflow: Mapping[str, Any], errors: Mapping[str, list[Problem]]) -> list[dict[str, Any]]:
    """List each model file the instances lack, with the nodes (and inputs) that want it."""
    wanted: dict[str, list[dict[str, Any]]] = {}
    for node_id, problems in errors.items():
        for problem in problems:
            name = problem.extra_info.get("missing_model")
            if isinstance(name, str):
                entry = {"node": node_id, "class_type": workflow[node_id].get("class_type"),
                         "input": problem.extra_info.get("input_name"), "label": label(node_id, workflow[node_id])}
                if "instances" in problem.extra_info:  # only some instances lack it
                    entry["instances"] = list(problem.extra_info["instances"])
                wanted.setdefault(name, []).append(entry)
    return [{"file": name, "nodes": nodes} for name, nodes in wanted.items()]


def validate_workflow(workflow: Mapping[str, Any], catalogues: Mapping[str, Catalogue], max_nodes: int = 500,
                      uploads: Collection[str] | None = None) -> None:
    """Raise WorkflowInvalid unless ``workflow`` is a graph that every instance of ``catalogues`` would run.

    ``uploads`` are the image names the sender may load (None: upload inputs are not checked).
    """
    if not workflow:
        raise WorkflowInvalid("workflow is empty: give at least one node and an output node", {})
    if len(workflow) > max_nodes:
        raise WorkflowInvalid(f"workflow has {len(workflow)} nodes; the limit is {max_nodes}", {})
    errors: dict[str, list[Problem]] = {}
    for node_id, node in workflow.items():
        problems = _check_node(node_id, node, workflow, catalogues, uploads)
        if problems:
            errors[node_id] = problems
    if not errors:
        cycle = _find_cycle(workflow)
        if cycle:
            errors[cycle[0]] = [Problem("link_cycle", f"links form a cycle: {' → '.join(cycle)}")]
    if errors:
        refused = refuse(workflow, errors)
        missing = missing_models(workflow, errors)
        if missing:
            listed = "; ".join(f"{m['file']!r} (wanted by {', '.join(n['label'] for n in m['nodes'])}{_where(m)})"
                               for m in missing)
            count = sum(map(len, errors.values())) - sum(len(m["nodes"]) for m in missing)
            more = f" (and {count} more problem{'s' * (count > 1)})" if count > 0 else ""
            raise WorkflowInvalid(f"missing model file{'s' * (len(missing) > 1)}: {listed}{more}",
                                  {**refused.errors, "missing_models": missing})
        raise refused
    if catalogues and not any(
            all(getattr(cat.get(node["class_type"]), "output_node", False) for cat in catalogues.values())
            for node in workflow.values()):
        raise WorkflowInvalid(
            "workflow has no output node (e.g. SaveImage or PreviewImage), so it would produce nothing", {})
