"""Where an input of a saved graph's node really comes from, as ComfyUI's editor resolves it on export.

A saved graph draws nodes that never reach the server: reroutes (their input
passes through), primitive nodes (their value becomes the target's widget
value), notes, bypassed nodes (mode 4: an output passes on the bypassed node's
input of the same type, else nothing) and subgraph instances (a node whose
``type`` is the id of a definition in ``definitions.subgraphs``; its inner
nodes run under the id ``<instance id>:<inner id>``, and inner links from the
definition's input node, id -10, come from the instance's inputs, or from its
promoted widget values). Each resolution ends at an executable node's output,
a literal value, or nothing (the input is left out).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .input_checks import types_match

MUTED, BYPASSED = 2, 4
SUBGRAPH_INPUT = -10
VIRTUAL_TYPES = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})


class LinkError(ValueError):
    """A saved graph's link points nowhere; ``node`` names the node holding it (None: the graph's own list)."""

    def __init__(self, node: str | None, message: str) -> None:
        super().__init__(node, message)
        self.node = node
        self.message = message


@dataclass(frozen=True)
class Link:
    """One link of a graph level: from an output slot of a node to an input slot of another."""

    origin_id: Any
    origin_slot: int
    target_id: Any
    target_slot: int
    type: Any = "*"


def _is_id(value: Any) -> bool:
    """Return whether a value can be a node or link id: an integer or a string."""
    return isinstance(value, str) or isinstance(value, int) and not isinstance(value, bool)


def _is_slot(value: Any) -> bool:
    """Return whether a value can be a slot index."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_links(raw: Any) -> dict[Any, Link]:
    """Return a level's links by id, from the array form (``[id, from, slot, to, slot, type]``) or the object form."""
    if raw is not None and not isinstance(raw, list):
        raise LinkError(None, "'links' must be a list")
    links: dict[Any, Link] = {}
    for item in raw or []:
        if isinstance(item, list) and len(item) >= 5:
            fields = item[:6] + ["*"] * (6 - len(item[:6]))
        elif isinstance(item, dict):
            fields = [item.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot")]
            fields.append(item.get("type", "*"))
        else:
            raise LinkError(None, f"link {item!r:.60} is neither [id, from, slot, to, slot, type] nor an object")
        ids, slots = (fields[0], fields[1], fields[3]), (fields[2], fields[4])
        if not (all(map(_is_id, ids)) and all(map(_is_slot, slots))):
            raise LinkError(None, f"link {item!r:.60} needs integer or string ids and slot indexes from 0")
        links[fields[0]] = Link(fields[1], fields[2], fields[3], fields[4], fields[5])
    return links


def kind_of(slot: Mapping[str, Any]) -> str:
    """Return a slot's type, ``*`` when it has none a link could match."""
    kind = slot.get("type", "*")
    return kind if isinstance(kind, str) else "*"


@dataclass
class Level:
    """One graph level: the top graph or a subgraph definition, its nodes and links by id."""

    nodes: dict[Any, dict[str, Any]]
    links: dict[Any, Link]
    outputs: list[Any] = field(default_factory=list)  # a definition's outputs, each with its ``linkIds``

    @classmethod
    def of(cls, graph: Mapping[str, Any]) -> "Level":
        """Return the level a graph or subgraph definition describes."""
        raw_nodes = graph.get("nodes") or []
        if not isinstance(raw_nodes, list):
            raise LinkError(None, "'nodes' must be a list")
        nodes = {n["id"]: n for n in raw_nodes if isinstance(n, dict) and _is_id(n.get("id"))}
        outputs = graph.get("outputs") or []
        return cls(nodes, read_links(graph.get("links")),
                   [o for o in outputs if isinstance(o, dict)] if isinstance(outputs, list) else [])


@dataclass(frozen=True)
class Place:
    """A node where it runs: its level, its node, and the instance it sits in (None at the top)."""

    level: Level
    node: dict[str, Any]
    path: tuple[str, ...]
    parent: "Place | None" = None

    @property
    def exec_id(self) -> str:
        """Return the id the node runs under: ``3``, or ``12:3`` inside subgraph instance 12."""
        return ":".join((*self.path, str(self.node.get("id"))))

    def inputs(self) -> list[dict[str, Any]]:
        """Return the node's input slots."""
        slots = self.node.get("inputs")
        return [i if isinstance(i, dict) else {} for i in slots] if isinstance(slots, list) else []


class Resolver:
    """Resolve inputs of a saved graph across reroutes, primitives, bypasses and subgraphs."""

    def __init__(self, definitions: Mapping[str, Mapping[str, Any]]) -> None:
        self.definitions = definitions
        self._levels: dict[str, Level] = {}

    def level_of(self, subgraph_id: str) -> Level:
        """Return a subgraph definition's level, read once."""
        if subgraph_id not in self._levels:
            self._levels[subgraph_id] = Level.of(self.definitions[subgraph_id])
        return self._levels[subgraph_id]

    def is_instance(self, node: Mapping[str, Any]) -> bool:
        """Return whether a node is an instance of a subgraph definition."""
        kind = node.get("type")
        return isinstance(kind, str) and kind in self.definitions

    def input(self, place: Place, slot: int, seen: frozenset[str] = frozenset()) -> tuple[str, Any] | None:
        """Return where input ``slot`` comes from: ``("link", [id, slot])``, ``("value", v)`` or None."""
        key = f"{place.exec_id}[I]{slot}"
        if key in seen:
            raise LinkError(place.exec_id, f"links form a loop through input {slot}")
        seen = seen | {key}
        slots = place.inputs()
        link_id = slots[slot].get("link") if slot < len(slots) else None
        if link_id is None:
            return None
        link = place.level.links.get(link_id) if _is_id(link_id) else None
        if link is None:
            raise LinkError(place.exec_id, f"input {slots[slot].get('name')!r} names link {link_id}, which the "
                            "graph does not have")
        if link.origin_id == SUBGRAPH_INPUT and place.parent is not None:
            return self._from_instance(place.parent, link.origin_slot, seen)
        origin = place.level.nodes.get(link.origin_id)
        if origin is None:
            raise LinkError(place.exec_id, f"input {slots[slot].get('name')!r} links from node {link.origin_id}, "
                            "which the graph does not have")
        wanted = kind_of(slots[slot])
        return self.output(Place(place.level, origin, place.path, place.parent), link.origin_slot, wanted, seen)

    def _from_instance(self, instance: Place, slot: int, seen: frozenset[str]) -> tuple[str, Any] | None:
        """Resolve a subgraph's input ``slot`` from its instance: a link there, or the promoted widget's value."""
        slots = instance.inputs()
        if slot >= len(slots):
            raise LinkError(instance.exec_id, f"the subgraph has no input {slot}")
        if slots[slot].get("link") is not None:
            return self.input(instance, slot, seen)
        widget = slots[slot].get("widget")
        values = instance.node.get("widgets_values")
        if isinstance(widget, dict) and isinstance(values, list):
            promoted = [s for s in slots if isinstance(s.get("widget"), dict)]
            index = promoted.index(slots[slot])
            if index < len(values):
                return ("value", values[index])
        return None

    def output(self, place: Place, slot: int, wanted: Any, seen: frozenset[str]) -> tuple[str, Any] | None:
        """Return what output ``slot`` of a node gives an input that takes ``wanted``."""
        key = f"{place.exec_id}[O]{slot}"
        if key in seen:
            raise LinkError(place.exec_id, f"links form a loop through output {slot}")
        seen = seen | {key}
        node = place.node
        if node.get("mode") == BYPASSED:
            index = self._bypass_slot(place, slot, wanted)
            return None if index is None else self.input(place, index, seen)
        if self.is_instance(node):
            return self._from_definition(place, slot, wanted, seen)
        kind = node.get("type") if isinstance(node.get("type"), str) else None
        if kind == "Reroute":
            return self.input(place, 0, seen)
        if kind == "PrimitiveNode":
            values = node.get("widgets_values")
            return ("value", values[0]) if isinstance(values, list) and values else None
        if kind in VIRTUAL_TYPES:
            return None
        return ("link", [place.exec_id, int(slot)])

    def _from_definition(self, instance: Place, slot: int, wanted: Any,
                         seen: frozenset[str]) -> tuple[str, Any] | None:
        """Resolve output ``slot`` of a subgraph instance to the inner node that feeds it."""
        level = self.level_of(instance.node["type"])
        outputs = level.outputs
        link_ids = (outputs[slot].get("linkIds") or []) if slot < len(outputs) else []
        first = link_ids[0] if isinstance(link_ids, list) and link_ids else None
        link = level.links.get(first) if _is_id(first) else None
        inner = level.nodes.get(link.origin_id) if link else None
        if link is None or inner is None:
            return None
        path = (*instance.path, str(instance.node.get("id")))
        return self.output(Place(level, inner, path, instance), link.origin_slot, wanted, seen)

    @staticmethod
    def _bypass_slot(place: Place, slot: int, wanted: Any) -> int | None:
        """Return the input a bypassed node passes to its output ``slot``, as the editor picks it."""
        slots = place.inputs()
        if not slots:
            return None
        if wanted in ("*", ""):
            return slot if len(slots) > slot else 0
        outs = place.node.get("outputs") if isinstance(place.node.get("outputs"), list) else []
        given = kind_of(outs[slot]) if slot < len(outs) and isinstance(outs[slot], dict) else "*"

        def fits(index: int) -> bool:
            kind = kind_of(slots[index])
            return types_match(kind, given) and types_match(kind, wanted)

        if slot < len(slots) and fits(slot):
            return slot
        exact = next((i for i, s in enumerate(slots) if kind_of(s) == wanted), None)
        return exact if exact is not None else next((i for i in range(len(slots)) if fits(i)), None)
