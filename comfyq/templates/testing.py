"""Helpers for tests that need template trees on disk: a small valid spec and a writer."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..sim.testing import txt2img


def sample_spec(name: str = "demo", version: int = 1, **changes: Any) -> dict[str, Any]:
    """Return a valid spec over the simulator's txt2img graph; keyword arguments replace top-level keys."""
    spec: dict[str, Any] = {
        "name": name,
        "version": version,
        "description": "A small test template.",
        "params": {
            "prompt": {"type": "string", "mode": "novice", "max_length": 50, "targets": ["6.text"]},
            "steps": {"type": "int", "mode": "novice", "default": 20, "min": 1, "max": 150, "targets": ["3.steps"]},
            "size": {"type": "int", "mode": "novice", "default": 512, "min": 64, "max": 2048, "multiple_of": 8,
                     "targets": ["5.width", "5.height"]},
            "cfg": {"type": "float", "default": 7, "min": 1, "max": 30, "targets": ["3.cfg"]},
            "sampler": {"type": "enum", "default": "euler", "choices": ["euler", "heun"],
                        "targets": ["3.sampler_name"]},
            "seed": {"type": "seed", "mode": "novice", "targets": ["3.seed"]},
        },
        "node_labels": {"3": "Sampling"},
        "cost": "ceil(size * size / 262144 * steps / 20)",
        "guards": [{"check": "size * size * steps <= 1024 * 1024 * 100",
                    "message": "too much work; lower size or steps"}],
        "time_limit": "max(60, steps * size * size / 262144 * 2)",
    }
    spec.update(changes)
    return spec


def write_template(root: Path, directory: str, spec: dict[str, Any] | str | None = None,
                   workflow: dict[str, Any] | str | None = None) -> Path:
    """Write ``root/directory/{spec.yaml,workflow.json}``; strings are written as they are; return the folder."""
    folder = root / directory
    folder.mkdir(parents=True, exist_ok=True)
    spec = sample_spec() if spec is None else spec
    (folder / "spec.yaml").write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
    graph = txt2img() if workflow is None else workflow
    (folder / "workflow.json").write_text(graph if isinstance(graph, str) else json.dumps(graph, indent=2))
    return folder
