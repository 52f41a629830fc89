"""``workflow.json``: reading it, checking it against a node catalogue, pointing params at it, filling it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ..workflows.published import from_object_info
from ..workflows.saved_format import is_saved_format, to_api
from ..workflows.validation import WorkflowInvalid, validate_workflow
from .params import Param

# Which widget kinds of /object_info each param type can feed.
ACCEPTS = {
    "int": {"INT", "FLOAT"}, "seed": {"INT"}, "float": {"FLOAT"}, "bool": {"BOOLEAN"},
    "string": {"STRING", "COMBO"}, "enum": {"COMBO", "STRING"}, "image": {"COMBO", "STRING"},
    "mask": {"COMBO", "STRING"},
}


def is_link(value: Any) -> bool:
    """Tell whether an input value is a ``[node_id, output_index]`` link."""
    return isinstance(value, list)


def read_workflow(path: Path, catalogue: Mapping[str, Any] | None = None) -> tuple[dict[str, Any] | None, list[str]]:
    """Parse a workflow file (API format, or saved format converted with ``catalogue``); return (graph, problems)."""
    if not path.is_file():
        return None, ["missing: every template needs its graph, in ComfyUI API format, beside spec.yaml"]
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return None, [f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"cannot read: {exc}"]
    if is_saved_format(graph) and catalogue is None:
        return None, ["this is a saved (UI-format) workflow and no node catalogue is at hand to convert it; "
                      "save it from ComfyUI with 'Export (API)'"]
    if is_saved_format(graph):
        try:
            graph = to_api(graph, {"catalogue": from_object_info(catalogue or {})})
        except WorkflowInvalid as exc:
            by_node = exc.errors.get("workflow") or {}
            return None, [f"node {node}: {p}" for node, found in by_node.items() for p in found] or [exc.message]
    if not isinstance(graph, dict):
        return None, ["must be a JSON object of node id → {class_type, inputs}"]
    try:
        validate_workflow(graph, {})
    except WorkflowInvalid as exc:
        by_node = exc.errors.get("workflow") or {}
        return None, [f"node {node}: {p}" for node, found in by_node.items() for p in found] or [exc.message]
    return graph, []


def _kind(declared: Any) -> str:
    """Return an /object_info input's kind: INT, FLOAT, STRING, BOOLEAN, COMBO or a link type."""
    first = declared[0] if isinstance(declared, (list, tuple)) and declared else declared
    return "COMBO" if isinstance(first, (list, tuple)) else str(first)


def declared_inputs(info: Mapping[str, Any]) -> dict[str, Any]:
    """Return a class's required and optional inputs from its /object_info entry."""
    sections = info.get("input") or {}
    return {**(sections.get("required") or {}), **(sections.get("optional") or {})}


def catalogue_problems(graph: Mapping[str, Any], catalogue: Mapping[str, Any]) -> list[str]:
    """Return what a node catalogue says cannot run: unknown classes, missing inputs, bad output indexes."""
    problems, outputs = [], False
    for node_id, node in graph.items():
        info = catalogue.get(node["class_type"])
        if not isinstance(info, dict):
            problems.append(f"node {node_id}: class_type {node['class_type']!r} is not in the node catalogue")
            continue
        outputs = outputs or bool(info.get("output_node"))
        required = (info.get("input") or {}).get("required") or {}
        for name in required:
            if name not in node["inputs"]:
                problems.append(f"node {node_id} ({node['class_type']}): required input {name!r} is missing")
        for name, value in node["inputs"].items():
            source = catalogue.get(graph[value[0]]["class_type"]) if is_link(value) else None
            if isinstance(source, dict) and value[1] >= len(source.get("output") or []):
                problems.append(f"node {node_id}: input {name!r} links to output {value[1]} of node {value[0]}, "
                                f"which has {len(source.get('output') or [])} output(s)")
    if not problems and not outputs:
        problems.append("no output node (e.g. SaveImage): the graph would produce nothing")
    return problems


def target_problem(graph: Mapping[str, Any], catalogue: Mapping[str, Any] | None, param: Param,
                   node_id: str, input_name: str) -> str | None:
    """Return why a param cannot set ``node_id.input_name``, or None."""
    node = graph.get(node_id)
    if node is None:
        return f"target {node_id}.{input_name}: node {node_id!r} is not in workflow.json"
    class_type = node["class_type"]
    if input_name not in node["inputs"]:
        return f"target {node_id}.{input_name}: node {node_id} ({class_type}) has no input {input_name!r}"
    if is_link(node["inputs"][input_name]):
        return f"target {node_id}.{input_name}: that input is a link; a param can only set a value"
    info = catalogue.get(class_type) if catalogue is not None else None
    if not isinstance(info, dict):
        return None  # no catalogue, or an unknown class, which the graph check reports
    declared = declared_inputs(info)
    if input_name not in declared:
        return f"target {node_id}.{input_name}: {class_type} has no input {input_name!r} in the node catalogue"
    kind = _kind(declared[input_name])
    where = f"target {node_id}.{input_name}: {class_type}.{input_name}"
    if kind != "*" and kind not in ACCEPTS[param.type]:
        return f"{where} takes {kind}, not a {param.type} value"
    return _limits_problem(where, param, declared[input_name])


def _limits_problem(where: str, param: Param, declared: Any) -> str | None:
    """Return how a param allows values that the input refuses: choices it lacks, numbers past its range."""
    first = declared[0] if isinstance(declared, (list, tuple)) and declared else None
    options = declared[1] if isinstance(declared, (list, tuple)) and len(declared) > 1 else {}
    options = options if isinstance(options, dict) else {}
    if param.type == "enum" and isinstance(first, (list, tuple)):
        missing = [c for c in param.choices or () if c not in first]
        if missing:
            return f"{where} does not offer {', '.join(map(repr, missing))}"
    if param.type in ("int", "float", "seed"):
        low, high = param.bounds
        if "min" in options and (low is None or low < options["min"]):
            return f"{where} accepts at least {options['min']}; give the param a min of {options['min']} or more"
        if "max" in options and (high is None or high > options["max"]):
            return f"{where} accepts at most {options['max']}; give the param a max of {options['max']} or less"
    return None


def fill(graph: Mapping[str, Any], params: Mapping[str, Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """Return a deep copy of the graph with every param's value set at its targets."""
    filled: dict[str, Any] = _copied(dict(graph))
    for name, param in params.items():
        for node_id, input_name in param.targets:
            filled[node_id]["inputs"][input_name] = values[name]
    return filled


def _copied(value: Any) -> Any:
    """Return a deep copy of JSON-like data (dicts, lists, tuples, scalars), far cheaper than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_copied(item) for item in value)
    return value
