"""Fixtures shared by unit and integration tests."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def txt2img(seed: int = 1, steps: int = 4, size: int = 64, prefix: str = "comfyq",
            sim: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return a small text-to-image graph; ``sim`` maps node ids to simulator knobs."""
    graph: dict[str, Any] = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }
    for node_id, knobs in (sim or {}).items():
        graph[node_id]["_meta"] = {"title": graph[node_id]["class_type"], "sim": knobs}
    return graph


@pytest.fixture
def workflow() -> dict[str, Any]:
    """A fresh copy of the small text-to-image graph."""
    return json.loads(json.dumps(txt2img()))
