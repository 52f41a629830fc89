"""`comfyq catalogue record` saves a running instance's /object_info; a simulator started on the recording serves
it as recorded and runs classes it has no implementation for; the core image nodes run for real."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from PIL import Image

from comfyq.sim.process import SimProcess, free_port
from comfyq.sim.testing import Listener
from tests.unit.sim.test_recorded_catalogue import synthetic


def record(url: str, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "comfyq", "catalogue", "record", url, "-o", str(target)],
                          capture_output=True, text=True, timeout=60, env={**os.environ})


def run(sim: SimProcess, prompt: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run a prompt to its end; return its history entry and the websocket messages."""
    client = Listener(sim.ws_url)
    client.recv()
    answer = requests.post(f"{sim.url}/prompt", json={"prompt": prompt, "client_id": client.client_id}, timeout=5)
    assert answer.status_code == 200, answer.text
    prompt_id = answer.json()["prompt_id"]
    messages = client.until_done(prompt_id, timeout=30)
    client.close()
    return requests.get(f"{sim.url}/history/{prompt_id}", timeout=5).json()[prompt_id], messages


def picture(sim: SimProcess, entry: dict[str, Any], node_id: str) -> Image.Image:
    ref = entry["outputs"][node_id]["images"][0]
    return Image.open(io.BytesIO(requests.get(f"{sim.url}/view", params=ref, timeout=5).content))


@pytest.fixture(scope="module")
def recording(sim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module simulator's catalogue recorded with the CLI, plus 300 synthetic classes."""
    target = tmp_path_factory.mktemp("recorded") / "fleet.json"
    done = record(sim.url, target)
    assert done.returncode == 0, done.stderr
    assert f"from {sim.url} to {target}" in done.stdout
    recorded = json.loads(target.read_text())
    assert recorded == requests.get(f"{sim.url}/object_info", timeout=5).json()
    target.write_text(json.dumps({**recorded, **synthetic(300)}))
    return target


@pytest.fixture(scope="module")
def recorded_sim(recording: Path) -> Iterator[SimProcess]:
    with SimProcess(extra_args=["--catalogue", str(recording)]) as process:
        yield process


def test_record_refuses_an_unreachable_instance_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "none.json"
    done = record(f"http://127.0.0.1:{free_port()}", target)
    assert done.returncode != 0 and "cannot read" in done.stderr and not target.exists()


def test_the_recording_is_served_as_recorded(recorded_sim: SimProcess, recording: Path) -> None:
    served = requests.get(f"{recorded_sim.url}/object_info", timeout=5).json()
    assert served == json.loads(recording.read_text()) and len(served) > 300


def test_an_unimplemented_class_runs_generically_between_real_ones(recorded_sim: SimProcess) -> None:
    started = time.monotonic()
    entry, messages = run(recorded_sim, {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": 1, "color": 0}},
        "2": {"class_type": "Synthetic0", "inputs": {"image": ["1", 0], "strength": 0.5}},
        "4": {"class_type": "Synthetic1", "inputs": {"model": ["5", 0], "latent": ["6", 0], "steps": 3, "seed": 1}},
        "5": {"class_type": "Synthetic2", "inputs": {"name": "model-2.safetensors"}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "generic"}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        "8": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["8", 2]}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
    })
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert picture(recorded_sim, entry, "3").size == (48, 32)
    steps = [m["data"]["value"] for m in messages if m["type"] == "progress" and m["data"]["node"] == "4"]
    assert steps == [1, 2, 3]  # a sampler-like class reports its steps
    assert time.monotonic() - started < 30


def test_a_bad_catalogue_file_stops_the_simulator_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(RuntimeError, match="not an /object_info answer"):
        SimProcess(output_dir=str(tmp_path / "sim"), extra_args=["--catalogue", str(bad)]).start()


def test_core_image_nodes_run_for_real(sim: SimProcess) -> None:
    entry, _ = run(sim, {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0xFF0000}},
        "2": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 8, "height": 8}},
        "3": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 0]}},
        "4": {"class_type": "ImageCompositeMasked", "inputs": {
            "destination": ["1", 0], "source": ["3", 0], "x": 8, "y": 8, "resize_source": False}},
        "5": {"class_type": "ImagePadForOutpaint", "inputs": {
            "image": ["4", 0], "left": 8, "top": 0, "right": 0, "bottom": 0, "feathering": 4}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "core"}},
    })
    assert entry["status"]["status_str"] == "success", entry["status"]
    saved = picture(sim, entry, "6").convert("RGB")
    assert saved.size == (40, 32)
    assert saved.getpixel((0, 0)) == (128, 128, 128)  # the padding
    assert saved.getpixel((20, 12)) == (255, 255, 255) and saved.getpixel((30, 28)) == (255, 0, 0)
