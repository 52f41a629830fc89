"""Cached node catalogues of the instances, as published by their workers.

Workers reduce ``/object_info`` to what validation and the conversion of saved
graphs need and store it in Redis: each class's outputs, display name, whether
it is an output node, and each input (in declared order, required first) with
its kind, bounds, choices, upload flag and whether the editor gives it a control
widget (seeds) or only a socket. Tooltips, defaults and descriptions are left
out, a combo list is stored once however many inputs share it (a checkpoint list
appears in every loader), and the choices of upload inputs (the instance's whole
input folder) are not stored at all. The API reads a catalogue, parses it at most
once per cache period and never asks ComfyUI itself on the request path. The
whole ``/object_info`` is stored beside the summary, for ComfyUI's editor.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import redis

# v3 keeps inputs in declared order with control and socket flags (what naming a saved graph's widgets needs);
# the summary of an older worker is not read: until it restarts, its instance counts as not yet published.
KEY = "comfyq:catalogue:v3:{}"
FULL_KEY = "comfyq:object_info:{}"  # the whole answer, as ComfyUI's editor reads it (comfyq.editor.catalogue)
WIDGETS = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
SEED_NAMES = frozenset({"seed", "noise_seed"})  # the editor gives these a control widget even unflagged


@dataclass(frozen=True)
class InputSpec:
    """One declared input of a node class: its kind and what values it takes."""

    kind: str  # INT, FLOAT, STRING, BOOLEAN, COMBO, or the type a link must carry (MODEL, IMAGE, *)
    required: bool
    minimum: int | float | None = None
    maximum: int | float | None = None
    choices: tuple[Any, ...] = ()
    choice_set: frozenset[Any] = frozenset()
    multiselect: bool = False
    upload: str | None = None  # "image", "video"…: a file of the instance's input folder
    control: bool = False  # the editor adds a control_after_generate widget after it (seeds)
    socket_only: bool = False  # forceInput: the editor draws a socket, never a widget
    listed: bool = False  # the instance declared a list of choices (perhaps empty: no such models at all)

    def offers(self, value: Any) -> bool:
        """Return whether ``value`` is one of the choices, as ComfyUI's ``in`` tells it."""
        try:
            return value in self.choice_set
        except TypeError:  # unhashable: compare one by one
            return value in self.choices


@dataclass(frozen=True)
class NodeClass:
    """One node class of an instance."""

    outputs: tuple[Any, ...]
    output_node: bool = False
    inputs: Mapping[str, InputSpec] = field(default_factory=dict)
    display_name: str = ""


Catalogue = dict[str, NodeClass]

_cache: dict[str, tuple[float, bytes | None, Catalogue | None]] = {}


def _number(value: Any) -> int | float | None:
    """Return ``value`` if it is a number (not a bool), else None."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _input(name: str, declared: Any, required: bool, lists: dict[str, int]) -> dict[str, Any] | None:
    """Summarise one declared input (``[type, {options}]``), interning its combo list; None if unreadable."""
    if not isinstance(declared, (list, tuple)) or not declared:
        return None
    kind, extra = declared[0], declared[1] if len(declared) > 1 and isinstance(declared[1], dict) else {}
    out: dict[str, Any] = {"required": required}
    upload = next((k[:-len("_upload")] for k, v in extra.items() if k.endswith("_upload") and v), None)
    if isinstance(kind, list) or kind == "COMBO":
        out["kind"] = "COMBO"
        options = kind if isinstance(kind, list) else extra.get("options")
        if upload is None and isinstance(options, list):
            out["choices"] = lists.setdefault(json.dumps(options), len(lists))
        if extra.get("multiselect"):
            out["multiselect"] = True
    elif isinstance(kind, str):
        out["kind"] = kind
    else:
        return None
    if upload is not None:
        out["upload"] = upload
    if extra.get("control_after_generate") or (kind == "INT" and name in SEED_NAMES):
        out["control"] = True
    if extra.get("forceInput"):
        out["socket_only"] = True
    for name in ("min", "max"):
        if _number(extra.get(name)) is not None:
            out[name] = extra[name]
    return out


def summarise(object_info: Mapping[str, Any]) -> dict[str, Any]:
    """Reduce a full ``/object_info`` answer to the JSON-ready summary validation needs."""
    lists: dict[str, int] = {}
    classes: dict[str, Any] = {}
    for name, info in object_info.items():
        if not isinstance(info, dict):
            continue
        inputs: dict[str, Any] = {}
        sections = info.get("input") if isinstance(info.get("input"), dict) else {}
        # In declared order, required first: the editor lays out widgets (and saves their values) so.
        for section in ("required", "optional"):
            for input_name, declared in (sections.get(section) or {}).items():
                summary = _input(input_name, declared, section == "required", lists)
                if summary is not None and input_name not in inputs:  # required wins a name declared in both
                    inputs[input_name] = summary
        classes[name] = {"output": list(info.get("output") or []), "output_node": bool(info.get("output_node")),
                         "input": inputs}
        if isinstance(info.get("display_name"), str) and info["display_name"] != name:
            classes[name]["display_name"] = info["display_name"]
    return {"choices": [json.loads(text) for text in lists], "classes": classes}


def parse(summary: Mapping[str, Any]) -> Catalogue:
    """Build the catalogue a summary describes; each combo list becomes one tuple and one set, shared."""
    shared = []
    for options in summary.get("choices") or []:
        hashable = [o for o in options if not isinstance(o, (list, dict))]
        shared.append((tuple(options), frozenset(hashable)))
    catalogue: Catalogue = {}
    for name, info in (summary.get("classes") or {}).items():
        inputs = {}
        for input_name, spec in (info.get("input") or {}).items():
            choices, choice_set = shared[spec["choices"]] if "choices" in spec else ((), frozenset())
            inputs[input_name] = InputSpec(spec["kind"], spec["required"], spec.get("min"), spec.get("max"),
                                           choices, choice_set, bool(spec.get("multiselect")), spec.get("upload"),
                                           bool(spec.get("control")), bool(spec.get("socket_only")),
                                           "choices" in spec)
        catalogue[name] = NodeClass(tuple(info.get("output") or ()), bool(info.get("output_node")), inputs,
                                    info.get("display_name") or name)
    return catalogue


def from_object_info(object_info: Mapping[str, Any]) -> Catalogue:
    """Return the catalogue of an ``/object_info`` answer, as the API will see it once published."""
    return parse(json.loads(json.dumps(summarise(object_info))))


def publish(r: redis.Redis, instance: str, object_info: dict[str, Any]) -> None:
    """Store an instance's catalogue summary for the API, and the whole ``/object_info`` for the editor."""
    r.set(KEY.format(instance), json.dumps(summarise(object_info), separators=(",", ":")))
    r.set(FULL_KEY.format(instance), json.dumps(object_info, separators=(",", ":")))


def object_info(r: redis.Redis, instances: list[str]) -> bytes | None:
    """Return the whole ``/object_info`` JSON last published by the first of ``instances`` that has one."""
    for instance in instances:
        raw = r.get(FULL_KEY.format(instance))
        if raw:
            return bytes(raw)
    return None


def load(r: redis.Redis, instance: str, ttl: float = 30.0) -> Catalogue | None:
    """Return an instance's catalogue, or None when no worker has published one.

    Redis is read at most once per ``ttl`` seconds, and the summary parsed again only when it changed.
    """
    now = time.monotonic()
    hit = _cache.get(instance)
    if hit and now - hit[0] < ttl:
        return hit[2]
    raw = r.get(KEY.format(instance))
    if hit and raw == hit[1]:
        catalogue = hit[2]
    else:
        catalogue = parse(json.loads(raw)) if raw else None
    _cache[instance] = (now, raw, catalogue)
    return catalogue
