"""Behaviour knobs: instance settings, per-prompt and per-node overrides.

Knobs come from three layers, the narrower winning:

- instance: CLI flags, ``--knobs JSON`` and ``POST /sim/config``;
- prompt: ``extra_data: {"sim": {...}}`` in ``POST /prompt``;
- node: ``"_meta": {"sim": {...}}`` on a node of the API-format graph
  (real ComfyUI ignores ``_meta``, so a graph carrying knobs still runs there).

``*_at`` knobs name a node id, a class_type, or a list of them; the bare
forms (``fail``, ``hang``, ``die``, ``drop_ws``) are meant for the node layer,
and so is ``reject``: ``POST /prompt`` refuses the graph with that reason as the
node's ``custom_validation_failed`` (a check nothing in ``/object_info`` foretells).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CHECKPOINTS = ["sd15.safetensors", "sdxl.safetensors"]
DEFAULT_UPSCALE_MODELS = ["4x-UltraSharp.pth", "RealESRGAN_x2plus.pth"]

# Knobs that only make sense per node or as a one-off action, never stored.
NODE_ONLY = {"fail", "hang", "die", "drop_ws", "reject"}
ACTIONS = {"release_hang", "freeze", "freeze_seconds"}


class KnobError(ValueError):
    """A knob name or value that the simulator does not understand."""


@dataclass
class Knobs:
    """Instance-wide knobs; every field may be overridden per prompt or node."""

    step_seconds: float = 0.0
    node_seconds: float = 0.0
    generic_seconds: float = 0.0  # what a class without an implementation (a recorded catalogue's) takes
    fail_at: str | list[str] | None = None
    fail_message: str | None = None
    fail_type: str = "RuntimeError"
    hang_at: str | list[str] | None = None
    die_at: str | list[str] | None = None
    drop_ws_at: str | list[str] | None = None
    start_delay: float = 0.0
    cache: bool = True
    previews: bool = False
    progress_state_per_step: bool = False
    checkpoints: list[str] = field(default_factory=lambda: list(DEFAULT_CHECKPOINTS))
    upscale_models: list[str] = field(default_factory=lambda: list(DEFAULT_UPSCALE_MODELS))

    @classmethod
    def names(cls) -> set[str]:
        """Return the names of all storable knobs."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Knobs":
        """Build knobs from a dict, rejecting unknown names."""
        return cls().merged(data or {})

    def merged(self, data: dict[str, Any]) -> "Knobs":
        """Return a copy with the given knobs applied."""
        unknown = set(data) - self.names()
        if unknown:
            raise KnobError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        values = self.to_dict()
        values.update(data)
        for name in ("step_seconds", "node_seconds", "generic_seconds", "start_delay"):
            try:
                values[name] = float(values[name])
            except (TypeError, ValueError):
                raise KnobError(f"{name} must be a number") from None
        for name in ("checkpoints", "upscale_models"):
            if not isinstance(values[name], list) or not all(isinstance(x, str) for x in values[name]):
                raise KnobError(f"{name} must be a list of file names")
        return Knobs(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the knobs as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class NodeKnobs:
    """The behaviour one node runs with, after all layers were applied."""

    step_seconds: float = 0.0
    node_seconds: float = 0.0
    generic_seconds: float = 0.0
    fail: str | None = None
    fail_type: str = "RuntimeError"
    hang: bool = False
    die: bool = False
    drop_ws: bool = False
    previews: bool = False
    progress_state_per_step: bool = False

    @property
    def disrupts(self) -> bool:
        """Tell whether this node must really run for its knobs to take effect."""
        return bool(self.fail is not None or self.hang or self.die or self.drop_ws)


def _targets(value: Any, node_id: str, class_type: str) -> bool:
    """Tell whether an ``*_at`` value names this node."""
    if value is None or value is False:
        return False
    names = value if isinstance(value, list) else [value]
    return any(str(name) in (node_id, class_type) for name in names)


def sim_dict(holder: Any) -> dict[str, Any]:
    """Return the ``sim`` dict inside extra_data or a node's ``_meta``, or {}."""
    found = holder.get("sim") if isinstance(holder, dict) else None
    return found if isinstance(found, dict) else {}


def resolve(
    instance: Knobs, prompt_sim: dict[str, Any], node_id: str, class_type: str, node_sim: dict[str, Any]
) -> NodeKnobs:
    """Combine the three knob layers into what one node does."""
    layered: dict[str, Any] = instance.to_dict()
    layered.update({k: v for k, v in prompt_sim.items() if k not in NODE_ONLY})
    layered.update(node_sim)
    fail = layered.get("fail")
    message = layered.get("fail_message")
    if isinstance(fail, str):
        message = fail
    failing = bool(fail) or _targets(layered.get("fail_at"), node_id, class_type)
    if failing and not message:
        message = f"Simulated failure in node {node_id} ({class_type})"
    return NodeKnobs(
        step_seconds=float(layered.get("step_seconds") or 0.0),
        node_seconds=float(layered.get("node_seconds") or 0.0),
        generic_seconds=float(layered.get("generic_seconds") or 0.0),
        fail=str(message) if failing else None,
        fail_type=str(layered.get("fail_type") or "RuntimeError"),
        hang=bool(layered.get("hang")) or _targets(layered.get("hang_at"), node_id, class_type),
        die=bool(layered.get("die")) or _targets(layered.get("die_at"), node_id, class_type),
        drop_ws=bool(layered.get("drop_ws")) or _targets(layered.get("drop_ws_at"), node_id, class_type),
        previews=bool(layered.get("previews")),
        progress_state_per_step=bool(layered.get("progress_state_per_step")),
    )


def caching_enabled(instance: Knobs, prompt_sim: dict[str, Any]) -> bool:
    """Tell whether a prompt may use and fill the output cache."""
    return bool(prompt_sim.get("cache", instance.cache))
