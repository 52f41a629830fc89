"""The values that flow between simulated nodes, and the context a node runs in."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from PIL import Image

from .files import Folders
from .knobs import NodeKnobs

# Above this many pixels, Pillow work leaves the event loop so HTTP stays responsive.
OFFLOAD_PIXELS = 512 * 512

Progress = Callable[[int, int, "Image.Image | None"], Awaitable[None]]


@dataclass(frozen=True)
class Handle:
    """A stand-in for a loaded model object (MODEL, CLIP, VAE, UPSCALE_MODEL)."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"<{self.kind} object for {self.name}>"


@dataclass(frozen=True)
class Conditioning:
    """A stand-in for encoded text."""

    text: str
    clip: str


@dataclass(frozen=True)
class Latent:
    """A stand-in latent batch: its pixel size and a key that decides its pictures."""

    width: int
    height: int
    batch: int
    key: str


@dataclass
class NodeContext:
    """What a running node may use besides its inputs."""

    node_id: str
    class_type: str
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    knobs: NodeKnobs
    folders: Folders
    progress: Progress
    previews: list[Image.Image] = field(default_factory=list)


async def offload(pixels: int, fn: Callable[..., Any], *args: Any) -> Any:
    """Run Pillow work in a thread when the picture is large, inline otherwise."""
    if pixels > OFFLOAD_PIXELS:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)
