"""A recorded /object_info replaces the simulator's catalogue; classes it cannot run run generically."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from PIL import Image

from comfyq.sim import catalogue
from comfyq.sim.files import Folders
from comfyq.sim.knobs import NodeKnobs
from comfyq.sim.recorded import CatalogueFileError, install, read_catalogue, run_generic
from comfyq.sim.values import Latent, NodeContext
from comfyq.templates.sim_catalogue import simulator_catalogue


def synthetic(count: int) -> dict[str, Any]:
    """Return ``count`` made-up classes in /object_info shape: samplers, image filters, loaders."""
    classes = {}
    for n in range(count):
        kind = n % 3
        inputs: dict[str, Any] = {"required": {"image": ["IMAGE"], "strength": ["FLOAT", {"default": 1.0}]}}
        output = ["IMAGE", "MASK"]
        if kind == 1:
            inputs = {"required": {"model": ["MODEL"], "latent": ["LATENT"], "steps": ["INT", {"default": 4}],
                                   "seed": ["INT", {"default": 0, "control_after_generate": True}]}}
            output = ["LATENT"]
        elif kind == 2:
            inputs = {"required": {"name": [[f"model-{n}.safetensors"], {}]}}
            output = ["MODEL", "CLIP"]
        classes[f"Synthetic{n}"] = {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items()},
                                    "output": output, "output_is_list": [False] * len(output), "output_name": output,
                                    "name": f"Synthetic{n}", "display_name": f"Synthetic {n}",
                                    "description": "", "python_module": "custom_nodes.synthetic",
                                    "category": "sampling" if kind == 1 else "synthetic", "output_node": False}
    return classes


def recording(tmp_path: Path, extra: int = 300) -> Path:
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps({**simulator_catalogue(), **synthetic(extra)}))
    return path


@pytest.fixture
def restore_specs() -> Iterator[None]:
    saved = dict(catalogue.SPECS)
    yield
    catalogue.SPECS.clear()
    catalogue.SPECS.update(saved)


def test_a_few_hundred_classes_load_in_under_a_second(tmp_path: Path, restore_specs: None) -> None:
    path = recording(tmp_path)
    own = len(simulator_catalogue())
    started = time.monotonic()
    install(read_catalogue(path))
    assert time.monotonic() - started < 1.0
    assert len(catalogue.SPECS) == own + 300
    served = catalogue.object_info(catalogue.Env(Folders.create(str(tmp_path)), None))  # type: ignore[arg-type]
    assert served["Synthetic1"] == json.loads(path.read_text())["Synthetic1"]  # served exactly as recorded


@pytest.mark.parametrize("content", ["not json", "[]", "{}", '{"X": 3}'])
def test_a_file_that_is_not_a_catalogue_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CatalogueFileError):
        read_catalogue(path)


def test_generic_classes_return_their_declared_types_and_report_steps(tmp_path: Path, restore_specs: None) -> None:
    install(read_catalogue(recording(tmp_path, 3)))
    steps: list[tuple[int, int]] = []

    async def progress(value: int, maximum: int, preview: Any) -> None:
        steps.append((value, maximum))

    def ctx(class_type: str) -> NodeContext:
        return NodeContext("1", class_type, "p", {}, {}, NodeKnobs(), Folders.create(str(tmp_path)), progress)

    picture = [Image.new("RGB", (24, 16), (1, 2, 3))]
    image, mask = asyncio.run(run_generic(ctx("Synthetic0"), image=picture, strength=1.0))
    assert image[0].size == (24, 16) and mask[0].mode == "L"
    other, _ = asyncio.run(run_generic(ctx("Synthetic0"), image=picture, strength=2.0))
    assert other[0].tobytes() != image[0].tobytes()  # outputs follow inputs
    (latent,) = asyncio.run(run_generic(ctx("Synthetic1"), model=None, latent={"samples": Latent(64, 64, 1, "k")},
                                        steps=4, seed=1))
    assert isinstance(latent["samples"], Latent) and steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
