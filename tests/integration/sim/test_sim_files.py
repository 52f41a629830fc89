"""Files: ``/view``, uploads, LoadImage and previews; plus the catalogue and system facts."""
from __future__ import annotations

import io
import json
from typing import Any, Iterator

import pytest
import requests
from PIL import Image

from comfyq.sim.process import SimProcess
from comfyq.sim.testing import Listener, txt2img


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with SimProcess() as process:
        yield process


def png(color: tuple[int, int, int], size: tuple[int, int] = (32, 24), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else (*color, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(sim: SimProcess, name: str, data: bytes, route: str = "image", **fields: str) -> requests.Response:
    return requests.post(f"{sim.url}/upload/{route}", files={"image": (name, data, "image/png")}, data=fields,
                         timeout=5)


def run(sim: SimProcess, prompt: dict[str, Any], messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    client = Listener(sim.ws_url)
    client.recv()
    response = requests.post(f"{sim.url}/prompt", json={"prompt": prompt, "client_id": client.client_id}, timeout=5)
    assert response.status_code == 200, response.text
    pid = response.json()["prompt_id"]
    received = client.until_done(pid)
    client.close()
    if messages is not None:
        messages.extend(received)
    return requests.get(f"{sim.url}/history/{pid}", timeout=5).json()[pid]


def view(sim: SimProcess, **params: str) -> requests.Response:
    return requests.get(f"{sim.url}/view", params=params, timeout=5)


@pytest.fixture(scope="module")
def saved(sim: SimProcess) -> dict[str, str]:
    entry = run(sim, txt2img(seed=3, width=96, height=64, prefix="viewme"))
    return entry["outputs"]["9"]["images"][0]


def test_view_serves_the_saved_png(sim: SimProcess, saved: dict[str, str]) -> None:
    response = view(sim, **saved)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (96, 64)
    assert json.loads(image.info["prompt"])["9"]["class_type"] == "SaveImage"
    assert saved["filename"] == "viewme_00001_.png"


def test_view_refusals(sim: SimProcess, saved: dict[str, str]) -> None:
    assert view(sim, filename="nope.png", type="output").status_code == 404
    assert view(sim).status_code == 404
    assert view(sim, filename=saved["filename"], type="models").status_code == 400
    assert view(sim, filename="../secret.png", type="output").status_code == 400
    assert view(sim, filename=saved["filename"], type="output", subfolder="../..").status_code == 403


def test_view_channels_and_preview(sim: SimProcess, saved: dict[str, str]) -> None:
    rgb = view(sim, **saved, channel="rgb")
    assert rgb.status_code == 200 and Image.open(io.BytesIO(rgb.content)).mode == "RGB"
    webp = view(sim, **saved, preview="webp;50")
    assert webp.headers["Content-Type"] == "image/webp"


def test_upload_renames_on_other_content_and_keeps_identical(sim: SimProcess) -> None:
    first = upload(sim, "cat.png", png((255, 0, 0)))
    assert first.json() == {"name": "cat.png", "subfolder": "", "type": "input"}
    assert upload(sim, "cat.png", png((255, 0, 0))).json()["name"] == "cat.png"
    assert upload(sim, "cat.png", png((0, 255, 0))).json()["name"] == "cat (1).png"
    assert upload(sim, "cat.png", png((0, 0, 255))).json()["name"] == "cat (2).png"
    assert upload(sim, "cat.png", png((0, 0, 9)), overwrite="true").json()["name"] == "cat.png"
    served = view(sim, filename="cat.png", type="input")
    assert Image.open(io.BytesIO(served.content)).getpixel((0, 0)) == (0, 0, 9)


def test_upload_into_subfolder_and_traversal_refused(sim: SimProcess) -> None:
    answer = upload(sim, "dog.png", png((1, 2, 3)), subfolder="pets").json()
    assert answer == {"name": "dog.png", "subfolder": "pets", "type": "input"}
    assert view(sim, filename="dog.png", type="input", subfolder="pets").status_code == 200
    assert upload(sim, "dog.png", png((1, 2, 3)), subfolder="../../x").status_code == 400


def test_upload_mask_applies_alpha_to_original(sim: SimProcess) -> None:
    upload(sim, "base.png", png((10, 20, 30), (16, 16)))
    ref = json.dumps({"filename": "base.png", "subfolder": "", "type": "input"})
    answer = upload(sim, "mask.png", png((0, 0, 0), (16, 16), mode="RGBA"), route="mask", original_ref=ref)
    assert answer.status_code == 200 and answer.json()["name"] == "mask.png"
    masked = Image.open(io.BytesIO(view(sim, filename="mask.png", type="input").content))
    assert masked.mode == "RGBA" and masked.getpixel((0, 0)) == (10, 20, 30, 128)


def test_load_scale_invert_pipeline(sim: SimProcess) -> None:
    upload(sim, "photo.png", png((200, 100, 50), (40, 30)))
    combo = requests.get(f"{sim.url}/object_info/LoadImage", timeout=5).json()["LoadImage"]["input"]["required"]
    assert "photo.png" in combo["image"][0]
    entry = run(sim, {
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bilinear",
                                                     "width": 80, "height": 0, "crop": "disabled"}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "sub/inverted"}},
    })
    image = entry["outputs"]["4"]["images"][0]
    assert image["subfolder"] == "sub" and image["filename"] == "inverted_00001_.png"
    result = Image.open(io.BytesIO(view(sim, **image).content))
    assert result.size == (80, 60) and result.getpixel((40, 30)) == (55, 155, 205)


def test_preview_image_goes_to_temp(sim: SimProcess) -> None:
    graph = txt2img(seed=11)
    graph["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    image = run(sim, graph)["outputs"]["9"]["images"][0]
    assert image["type"] == "temp" and image["filename"].startswith("ComfyUI_temp_")
    assert view(sim, **image).status_code == 200


def test_upscale_with_model_reports_tiles(sim: SimProcess) -> None:
    graph = txt2img(seed=12)
    graph["10"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "RealESRGAN_x2plus.pth"}}
    graph["11"] = {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["10", 0], "image": ["8", 0]}}
    graph["9"]["inputs"]["images"] = ["11", 0]
    messages: list[dict[str, Any]] = []
    image = run(sim, graph, messages)["outputs"]["9"]["images"][0]
    assert Image.open(io.BytesIO(view(sim, **image).content)).size == (128, 128)
    tiles = [m["data"] for m in messages if m["type"] == "progress" and m["data"]["node"] == "11"]
    assert tiles and tiles[-1]["value"] == tiles[-1]["max"]


def test_object_info_shape(sim: SimProcess) -> None:
    catalogue = requests.get(f"{sim.url}/object_info", timeout=5).json()
    expected = {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "VAEEncode",
                "LoadImage", "ImageScale", "ImageInvert", "SaveImage", "PreviewImage", "LatentUpscale"}
    assert expected <= set(catalogue)
    sampler = catalogue["KSampler"]
    required = sampler["input"]["required"]
    assert required["seed"][0] == "INT" and required["seed"][1]["max"] == 0xFFFFFFFFFFFFFFFF
    assert "euler" in required["sampler_name"][0] and "karras" in required["scheduler"][0]
    assert required["steps"][1] == {"default": 20, "min": 1, "max": 10000}
    assert sampler["input_order"]["required"][:2] == ["model", "seed"]
    assert sampler["output"] == ["LATENT"] and sampler["output_node"] is False
    assert set(sampler) >= {"output_is_list", "output_name", "name", "display_name", "description", "category"}
    assert catalogue["SaveImage"]["output_node"] is True and catalogue["SaveImage"]["output"] == []
    assert catalogue["CheckpointLoaderSimple"]["output"] == ["MODEL", "CLIP", "VAE"]
    assert catalogue["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == [
        "sd15.safetensors", "sdxl.safetensors"]
    assert catalogue["EmptyLatentImage"]["input"]["required"]["width"][1]["step"] == 8
    assert requests.get(f"{sim.url}/object_info/Nope", timeout=5).json() == {}


def test_system_stats_shape(sim: SimProcess) -> None:
    stats = requests.get(f"{sim.url}/system_stats", timeout=5).json()
    assert {"os", "python_version", "comfyui_version", "ram_total", "ram_free"} <= set(stats["system"])
    device = stats["devices"][0]
    assert {"name", "type", "index", "vram_total", "vram_free"} <= set(device)
