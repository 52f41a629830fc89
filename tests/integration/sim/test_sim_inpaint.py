"""Inpainting nodes: LoadImageMask, VAEEncodeForInpaint and SetLatentNoiseMask, as ComfyUI has them."""
from __future__ import annotations

import io
from typing import Any, Iterator

import pytest
import requests
from PIL import Image

from comfyq.sim.masks import channel_mask
from comfyq.sim.process import SimProcess
from comfyq.sim.testing import Listener


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with SimProcess() as process:
        for name, picture in {
            "photo.png": Image.new("RGB", (100, 75), (200, 120, 40)),
            "mask_none.png": Image.new("L", (100, 75), 0),
            "mask_full.png": Image.new("L", (100, 75), 255),
        }.items():
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            answer = requests.post(f"{process.url}/upload/image", files={"image": (name, buffer.getvalue())},
                                   timeout=5)
            assert answer.status_code == 200
        yield process


def inpaint(mask: str = "mask_full.png", channel: str = "red", grow: Any = 6, seed: int = 1) -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a bench", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 2, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["7", 0]}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "SaveImage", "inputs": {"filename_prefix": "inpaint", "images": ["5", 0]}},
        "7": {"class_type": "VAEEncodeForInpaint", "inputs": {
            "pixels": ["8", 0], "vae": ["1", 2], "mask": ["9", 0], "grow_mask_by": grow}},
        "8": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "9": {"class_type": "LoadImageMask", "inputs": {"image": mask, "channel": channel}},
    }


def run(sim: SimProcess, prompt: dict[str, Any]) -> Image.Image:
    client = Listener(sim.ws_url)
    client.recv()
    answer = requests.post(f"{sim.url}/prompt", json={"prompt": prompt, "client_id": client.client_id}, timeout=5)
    assert answer.status_code == 200, answer.text
    prompt_id = answer.json()["prompt_id"]
    client.until_done(prompt_id)
    client.close()
    entry = requests.get(f"{sim.url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    assert entry["status"]["status_str"] == "success", entry["status"]
    image = next(iter(entry["outputs"].values()))["images"][0]
    return Image.open(io.BytesIO(requests.get(f"{sim.url}/view", params=image, timeout=5).content))


def test_catalogue_entries_match_comfyui(sim: SimProcess) -> None:
    info = requests.get(f"{sim.url}/object_info", timeout=5).json()
    mask = info["LoadImageMask"]
    assert mask["output"] == ["MASK"] and mask["category"] == "mask"
    assert "photo.png" in mask["input"]["required"]["image"][0]
    assert mask["input"]["required"]["image"][1] == {"image_upload": True}
    assert mask["input"]["required"]["channel"] == [["alpha", "red", "green", "blue"]]
    encode = info["VAEEncodeForInpaint"]
    assert encode["display_name"] == "VAE Encode (for Inpainting)" and encode["output"] == ["LATENT"]
    assert encode["input"]["required"]["grow_mask_by"] == ["INT", {"default": 6, "min": 0, "max": 64, "step": 1}]
    assert encode["input_order"]["required"] == ["pixels", "vae", "mask", "grow_mask_by"]
    assert info["SetLatentNoiseMask"]["input"]["required"] == {"samples": ["LATENT"], "mask": ["MASK"]}


def test_inpaint_graph_runs_and_crops_to_multiples_of_8(sim: SimProcess) -> None:
    assert run(sim, inpaint()).size == (96, 72)


def test_the_mask_decides_the_picture(sim: SimProcess) -> None:
    full = run(sim, inpaint("mask_full.png", seed=5)).tobytes()
    empty = run(sim, inpaint("mask_none.png", seed=5)).tobytes()
    assert full != empty
    assert run(sim, inpaint("mask_full.png", seed=5)).tobytes() == full


def test_set_latent_noise_mask_runs(sim: SimProcess) -> None:
    graph = inpaint()
    graph["7"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["8", 0], "vae": ["1", 2]}}
    graph["10"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["7", 0], "mask": ["9", 0]}}
    graph["4"]["inputs"]["latent_image"] = ["10", 0]
    assert run(sim, graph).size == (100, 75)


@pytest.mark.parametrize(("graph", "kind", "input_name", "details"), [
    (inpaint(mask="missing.png"), "custom_validation_failed", "image", "image - Invalid image file: missing.png"),
    (inpaint(channel="purple"), "value_not_in_list", "channel", "channel: 'purple' not in"),
    (inpaint(grow=65), "value_bigger_than_max", "grow_mask_by", "grow_mask_by"),
])
def test_validation_like_comfyui(sim: SimProcess, graph: dict[str, Any], kind: str, input_name: str,
                                 details: str) -> None:
    answer = requests.post(f"{sim.url}/prompt", json={"prompt": graph}, timeout=5)
    assert answer.status_code == 400
    errors = next(iter(answer.json()["node_errors"].values()))["errors"]
    assert errors[0]["type"] == kind and errors[0]["extra_info"]["input_name"] == input_name
    assert errors[0]["details"].startswith(details)


def test_channel_masks_invert_alpha_only() -> None:
    picture = Image.new("RGBA", (4, 4), (10, 20, 30, 200))
    assert channel_mask(picture, "alpha").getpixel((0, 0)) == 55
    assert channel_mask(picture, "red").getpixel((0, 0)) == 10
    assert channel_mask(picture, "blue").getpixel((0, 0)) == 30
    assert channel_mask(Image.new("RGB", (2, 2), (1, 2, 3)), "alpha").getpixel((0, 0)) == 0
