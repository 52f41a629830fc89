"""Recorded catalogues: a real instance's ``/object_info`` served as it was, its unknown classes run generically.

``python -m comfyq.sim --catalogue FILE`` (and ``comfyq up --sim-catalogue``)
replaces the simulator's own catalogue with a recording made by ``comfyq
catalogue record``. Classes the simulator implements still run for real;
every other class runs generically: it waits ``generic_seconds`` (a knob),
reports one progress step per step when it has a ``steps`` input or is a
sampler, and returns a value of each declared output type (pictures drawn from
its inputs, stand-in models and latents); an output node shows its images.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Mapping

from PIL import Image

from . import images as imaging
from .catalogue import SPECS, NodeSpec
from .files import temp_prefix
from .values import Conditioning, Handle, Latent, NodeContext

DEFAULT_SIZE = 64
PLAIN = {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}


class CatalogueFileError(ValueError):
    """A recorded catalogue file cannot be read or is not an ``/object_info`` answer."""


def recorded_specs(object_info: Mapping[str, Any]) -> dict[str, NodeSpec]:
    """Return one spec per recorded class, serving each class's entry exactly as recorded."""
    specs = {}
    for name, entry in object_info.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("input", {}), dict):
            raise CatalogueFileError(f"class {name!r}: not an /object_info entry (an object with 'input')")
        sections = entry.get("input") or {}
        uploads = tuple(n for section in sections.values() if isinstance(section, dict)
                        for n, d in section.items()
                        if isinstance(d, list) and len(d) > 1 and isinstance(d[1], dict)
                        and any(k.endswith("_upload") and v for k, v in d[1].items()))
        specs[name] = NodeSpec(
            name, str(entry.get("display_name") or name), str(entry.get("category") or ""),
            lambda env, sections=sections: sections, tuple(entry.get("output") or ()),
            bool(entry.get("output_node")), python_module=str(entry.get("python_module") or "custom_nodes"),
            custom_validated=uploads, recorded=dict(entry))
    return specs


def read_catalogue(path: str | Path) -> dict[str, NodeSpec]:
    """Read a recorded ``/object_info`` file into specs; raise CatalogueFileError when it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogueFileError(f"{path}: cannot read a catalogue: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise CatalogueFileError(f"{path}: not an /object_info answer (an object of class name → entry)")
    return recorded_specs(data)


def install(specs: Mapping[str, NodeSpec]) -> None:
    """Serve ``specs`` as this process's catalogue, in place of the simulator's own."""
    SPECS.clear()
    SPECS.update(specs)


def _key(value: Any) -> Any:
    """Return a stable stand-in for an input value: pictures by content, the rest as they print."""
    if isinstance(value, list) and value and isinstance(value[0], Image.Image):
        return [imaging.image_key(v) for v in value]
    if isinstance(value, dict):
        return {k: _key(v) for k, v in sorted(value.items())}
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def _size(inputs: Mapping[str, Any]) -> tuple[int, int, int]:
    """Return the width, height and batch a generic node's pictures take from its inputs."""
    for value in inputs.values():
        if isinstance(value, list) and value and isinstance(value[0], Image.Image):
            return value[0].width, value[0].height, len(value)
        if isinstance(value, dict) and isinstance(value.get("samples"), Latent):
            latent = value["samples"]
            return latent.width, latent.height, latent.batch

    def number(name: str, default: int) -> int:
        given = inputs.get(name)
        return given if isinstance(given, int) and not isinstance(given, bool) and 0 < given <= 4096 else default

    return number("width", DEFAULT_SIZE), number("height", DEFAULT_SIZE), min(number("batch_size", 1), 16)


def _output(kind: Any, index: int, key: str, size: tuple[int, int, int], class_type: str) -> Any:
    """Return a value of one declared output type."""
    width, height, batch = size
    if kind == "IMAGE":
        return [imaging.render(key, index * 100 + n, width, height) for n in range(batch)]
    if kind == "MASK":
        return [imaging.render(key, index * 100 + n, width, height).convert("L") for n in range(batch)]
    if kind == "LATENT":
        return {"samples": Latent(width, height, batch, imaging.digest(key, index))}
    if kind == "CONDITIONING":
        return Conditioning(key, class_type)
    if isinstance(kind, str) and kind in PLAIN:
        return PLAIN[kind]
    return Handle(kind if isinstance(kind, str) else "COMBO", class_type)


async def run_generic(ctx: NodeContext, **inputs: Any) -> Any:
    """Run a class the simulator has no implementation for: wait, report steps, return its declared outputs."""
    spec = SPECS[ctx.class_type]
    key = imaging.digest(ctx.class_type, _key(inputs))
    if ctx.knobs.generic_seconds > 0:
        await asyncio.sleep(ctx.knobs.generic_seconds)
    steps = inputs.get("steps")
    if isinstance(steps, int) and not isinstance(steps, bool) or spec.category.startswith("sampling"):
        total = min(max(int(steps or 1), 1), 10000)
        for step in range(1, total + 1):
            await ctx.progress(step, total, None)
    size = _size(inputs)
    outputs = tuple(_output(kind, i, key, size, ctx.class_type) for i, kind in enumerate(spec.output))
    if not spec.output_node:
        return outputs
    pictures = [p for v in inputs.values() if isinstance(v, list) for p in v if isinstance(p, Image.Image)]
    if not pictures:
        return {"ui": {}, "result": outputs}
    saved = []
    prefix = temp_prefix()
    for n, picture in enumerate(pictures):
        name = f"{prefix}_{n:05}_.png"
        imaging.save_png(picture, str(Path(ctx.folders.temp) / name), {}, 1)
        saved.append({"filename": name, "subfolder": "", "type": "temp"})
    return {"ui": {"images": saved}, "result": outputs}
