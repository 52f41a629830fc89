"""ComfyUI's saved (UI-format) graphs: telling them from the API format and converting them as the editor exports.

A saved graph lists ``nodes`` (each with ``type``, ``mode``, ``inputs`` slots
holding link ids, and ``widgets_values``) and ``links``. The editor's export
names each widget value after the input it belongs to, in the order the class
declares its widget inputs (required first), skipping the value of the control
widget it adds after a seed (``control_after_generate``: ``fixed``,
``randomize``…) and of an image loader's upload button; then each linked input
becomes ``[node id, output index]``, resolved across reroutes, primitives,
bypassed nodes and subgraphs (``saved_links``). Muted nodes (mode 2) and
bypassed ones (mode 4) are left out, and so are links to nodes left out.
The classes' widget inputs come from the instances' published catalogues.
"""
from __future__ import annotations

from typing import Any, Mapping

from .node_errors import Problem, WorkflowInvalid, refuse
from .published import WIDGETS, Catalogue, NodeClass
from .saved_links import MUTED, BYPASSED, VIRTUAL_TYPES, Level, LinkError, Place, Resolver

API, SAVED = "api", "saved"
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize", "increment-wrap"})
UPLOAD_BUTTONS = frozenset({"image", "video", "audio", "file", "3d"})
MAX_DEPTH = 8  # subgraphs inside subgraphs; deeper is refused rather than followed


class SavedGraphInvalid(WorkflowInvalid):
    """A saved-format graph cannot be converted; ``errors`` names each node and what is wrong."""


def is_saved_format(graph: Any) -> bool:
    """Return whether ``graph`` is in the editor's saved format (``nodes`` and ``links``) rather than the API's."""
    return isinstance(graph, dict) and isinstance(graph.get("nodes"), list) and (
        "links" in graph or "last_node_id" in graph or "version" in graph)


def workflow_format(graph: Any) -> str:
    """Return ``"saved"`` or ``"api"``: the format a workflow came in."""
    return SAVED if is_saved_format(graph) else API


def _within(graph: Mapping[str, Any], outer: str, inner: str) -> Any:
    """Return ``graph[outer][inner]`` when both levels are there, else None."""
    holder = graph.get(outer)
    return holder.get(inner) if isinstance(holder, dict) else None


def _merged(catalogues: Mapping[str, Catalogue]) -> dict[str, NodeClass]:
    """Return one class per name, from the first catalogue that has it."""
    merged: dict[str, NodeClass] = {}
    for catalogue in catalogues.values():
        for name, node_class in catalogue.items():
            merged.setdefault(name, node_class)
    return merged


def widget_inputs(node_class: NodeClass, values: Any) -> dict[str, Any]:
    """Name a node's ``widgets_values`` after its widget inputs, leaving out control and upload-button values."""
    if isinstance(values, dict):  # some nodes save their widgets by name
        return {name: values[name] for name in node_class.inputs if name in values}
    values = list(values) if isinstance(values, list) else []
    named: dict[str, Any] = {}
    at = 0
    for name, spec in node_class.inputs.items():
        if spec.kind not in WIDGETS or spec.socket_only:
            continue
        if at >= len(values):
            break
        named[name] = values[at]
        at += 1
        if spec.control and at < len(values) and values[at] in CONTROL_VALUES:
            at += 1
        if spec.upload and at < len(values) and values[at] in UPLOAD_BUTTONS:
            at += 1
    return {name: {"__value__": v} if isinstance(v, list) else v for name, v in named.items()}


def _places(resolver: Resolver, level: Level, path: tuple[str, ...], parent: Place | None,
            inherited_mode: int, budget: list[int]) -> list[tuple[Place, int]]:
    """List every node that may run, with the mode it runs in, expanding subgraph instances (``budget[0]`` at most)."""
    found = []
    for node in level.nodes.values():
        budget[0] -= 1
        if budget[0] < 0:  # checked while expanding: nested instances could multiply without end
            raise LinkError(None, "the graph has too many nodes once its subgraphs are expanded")
        place = Place(level, node, path, parent)
        mode = inherited_mode if inherited_mode in (MUTED, BYPASSED) else node.get("mode", 0)
        if resolver.is_instance(node):
            if len(path) >= MAX_DEPTH:
                raise LinkError(place.exec_id, f"subgraphs nest deeper than {MAX_DEPTH} levels")
            inner = resolver.level_of(node["type"])
            found += _places(resolver, inner, (*path, str(node.get("id"))), place, mode, budget)
        else:
            found.append((place, mode))
    return found


def _convert_node(place: Place, node_class: NodeClass, resolver: Resolver) -> dict[str, Any]:
    """Return one node in API format: its widget values by name, then its resolved inputs."""
    node = place.node
    inputs = widget_inputs(node_class, node.get("widgets_values"))
    for slot, declared in enumerate(place.inputs()):
        found = resolver.input(place, slot)
        name = declared.get("name") or (declared.get("widget") or {}).get("name")
        if found is None or not isinstance(name, str):
            continue
        kind, value = found
        inputs[name] = {"__value__": value} if kind == "value" and isinstance(value, list) else value
    title = node.get("title") or node_class.display_name or node["type"]
    return {"inputs": inputs, "class_type": node["type"], "_meta": {"title": title}}


def _unreadable(exc: LinkError) -> SavedGraphInvalid:
    """Return the 422 for a graph whose own structure (its nodes or links lists) cannot be read."""
    if exc.node is not None:
        return _refused({exc.node: [Problem("bad_saved_graph", exc.message)]}, {})
    return SavedGraphInvalid(f"saved-format graph: {exc.message}", {"workflow": {}, "node_errors": {}})


def _refused(problems: dict[str, list[Problem]], kinds: Mapping[str, Any]) -> SavedGraphInvalid:
    """Return the 422 for conversion problems, each node named with its type."""
    base = refuse({nid: {"class_type": kinds.get(nid)} for nid in problems}, problems)
    return SavedGraphInvalid(f"saved-format graph: {base.message}", base.errors)


def to_api(graph: Mapping[str, Any], catalogues: Mapping[str, Catalogue], max_nodes: int = 500) -> dict[str, Any]:
    """Return the API-format graph the editor would export from a saved graph; raise SavedGraphInvalid if none."""
    found = _within(graph, "definitions", "subgraphs")
    definitions = {d["id"]: d for d in found if isinstance(d, dict) and isinstance(d.get("id"), str)} \
        if isinstance(found, list) else {}
    groups = _within(graph, "extra", "groupNodes")
    groups = groups if isinstance(groups, dict) else {}
    resolver, classes = Resolver(definitions), _merged(catalogues)
    problems: dict[str, list[Problem]] = {}
    kinds: dict[str, Any] = {}
    try:
        # Room for notes, reroutes and primitives; the API graph's own node limit is validation's to check.
        places = _places(resolver, Level.of(graph), (), None, 0, [4 * max_nodes])
    except LinkError as exc:
        raise _unreadable(exc) from None
    output: dict[str, dict[str, Any]] = {}
    for place, mode in places:
        exec_id, kind = place.exec_id, place.node.get("type")
        kind = kind if isinstance(kind, str) else None
        kinds[exec_id] = kind
        if mode in (MUTED, BYPASSED) or kind in VIRTUAL_TYPES:
            continue
        if not kind:
            problems[exec_id] = [Problem("missing_class_type", "node has no 'type'")]
        elif kind.startswith(("workflow>", "workflow/")) or kind in groups:
            problems[exec_id] = [Problem("group_node_not_supported", f"{kind!r} is a legacy group node; open the "
                                         "graph in a current ComfyUI editor, convert it to a subgraph, save again")]
        elif kind not in classes:
            problems[exec_id] = [Problem("class_not_installed", f"class_type {kind!r} is not installed on any "
                                         "instance, so its widget values cannot be named")]
        else:
            try:
                output[exec_id] = _convert_node(place, classes[kind], resolver)
            except LinkError as exc:
                problems.setdefault(exc.node or exec_id, []).append(Problem("bad_saved_graph", exc.message))
            except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
                # Whatever else a hand-made file gets wrong is the sender's to fix: a 422, never a 500.
                problems.setdefault(exec_id, []).append(
                    Problem("bad_saved_graph", f"cannot be read as the editor saves nodes ({exc})"))
    if problems:
        raise _refused(problems, kinds)
    for node in output.values():  # as the editor does: links to nodes left out are dropped
        for name, value in list(node["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and value[0] not in output:
                del node["inputs"][name]
    return output
