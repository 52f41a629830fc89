"""ComfyUI's core image and mask nodes run for real in the simulator: outputs follow inputs."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from comfyq.sim.catalogue import SPECS, Env
from comfyq.sim.files import Folders
from comfyq.sim.knobs import Knobs, NodeKnobs
from comfyq.sim.nodes import IMPLEMENTATIONS
from comfyq.sim.prompt_checks import validate_prompt
from comfyq.sim.values import NodeContext

CORE = ["EmptyImage", "ImageInvert", "ImageBlur", "ImageSharpen", "ImageScale", "ImageScaleBy", "ImageCrop",
        "ImageBlend", "ImageCompositeMasked", "ImagePadForOutpaint", "ImageToMask", "MaskToImage", "SolidMask",
        "JoinImageWithAlpha", "ImageRGBToYUV", "PreviewImage", "SaveImage", "LoadImage"]


def run(class_type: str, **inputs: Any) -> Any:
    """Run one node's implementation outside a server."""
    async def progress(value: int, maximum: int, preview: Any) -> None:
        return None

    ctx = NodeContext("1", class_type, "p", {}, {}, NodeKnobs(), Folders.create(None), progress)
    return asyncio.run(IMPLEMENTATIONS[class_type](ctx, **inputs))


def solid(rgb: tuple[int, int, int], size: tuple[int, int] = (16, 16)) -> list[Image.Image]:
    return [Image.new("RGB", size, rgb)]


def test_every_core_node_is_declared_and_implemented() -> None:
    for name in CORE:
        assert name in SPECS and name in IMPLEMENTATIONS, name
    info = SPECS["EmptyImage"].info(Env(Folders.create(None), Knobs()))
    assert list(info["input"]["required"]) == ["width", "height", "batch_size", "color"]
    assert info["input"]["required"]["color"][1]["max"] == 0xFFFFFF and info["output"] == ["IMAGE"]
    assert SPECS["ImageRGBToYUV"].info(Env(Folders.create(None), Knobs()))["output_name"] == ["Y", "U", "V"]
    assert "mask" in SPECS["ImageCompositeMasked"].inputs(Env(Folders.create(None), Knobs()))["optional"]


def test_empty_image_then_invert() -> None:
    (batch,) = run("EmptyImage", width=64, height=32, batch_size=2, color=0x102030)
    assert len(batch) == 2 and batch[0].size == (64, 32) and batch[0].getpixel((0, 0)) == (16, 32, 48)
    (inverted,) = run("ImageInvert", image=batch)
    assert inverted[0].getpixel((5, 5)) == (239, 223, 207)


def test_blur_and_sharpen_change_edges() -> None:
    picture = Image.new("RGB", (16, 16), (0, 0, 0))
    picture.paste((255, 255, 255), (8, 0, 16, 16))
    (blurred,) = run("ImageBlur", image=[picture], blur_radius=3, sigma=2.0)
    assert 0 < blurred[0].getpixel((8, 8))[0] < 255
    (sharp,) = run("ImageSharpen", image=blurred, sharpen_radius=2, sigma=1.0, alpha=2.0)
    assert sharp[0].tobytes() != blurred[0].tobytes()


@pytest.mark.parametrize("mode, expected", [("normal", 255), ("multiply", 0), ("difference", 255)])
def test_blend_modes(mode: str, expected: int) -> None:
    (blended,) = run("ImageBlend", image1=solid((0, 0, 0)), image2=solid((255, 255, 255), (8, 8)),
                     blend_factor=1.0, blend_mode=mode)
    assert blended[0].size == (16, 16) and blended[0].getpixel((3, 3))[0] == expected


def test_crop_composite_and_pad() -> None:
    (cropped,) = run("ImageCrop", image=solid((9, 9, 9), (20, 10)), width=50, height=4, x=15, y=2)
    assert cropped[0].size == (5, 4)
    (mask,) = run("SolidMask", value=1.0, width=4, height=4)
    (composite,) = run("ImageCompositeMasked", destination=solid((0, 0, 0)), source=solid((200, 0, 0), (4, 4)),
                       x=2, y=2, resize_source=False, mask=mask)
    assert composite[0].getpixel((3, 3)) == (200, 0, 0) and composite[0].getpixel((10, 10)) == (0, 0, 0)
    padded, pad_mask = run("ImagePadForOutpaint", image=solid((50, 50, 50)), left=8, top=0, right=0, bottom=0,
                           feathering=4)
    assert padded[0].size == (24, 16) and padded[0].getpixel((0, 0)) == (128, 128, 128)
    assert pad_mask[0].getpixel((0, 5)) == 255 and pad_mask[0].getpixel((8, 5)) == 255
    assert 0 < pad_mask[0].getpixel((10, 5)) < 255 and pad_mask[0].getpixel((20, 5)) == 0


def test_masks_images_alpha_and_yuv() -> None:
    (mask,) = run("ImageToMask", image=solid((10, 20, 30)), channel="green")
    assert mask[0].getpixel((0, 0)) == 20
    (grey,) = run("MaskToImage", mask=mask)
    assert grey[0].getpixel((0, 0)) == (20, 20, 20)
    (half,) = run("SolidMask", value=0.25, width=16, height=16)
    (joined,) = run("JoinImageWithAlpha", image=solid((1, 2, 3)), alpha=half)
    assert joined[0].mode == "RGBA" and joined[0].getpixel((0, 0)) == (1, 2, 3, 191)
    y, u, v = run("ImageRGBToYUV", image=solid((255, 0, 0)))
    assert y[0].getpixel((0, 0))[0] == 76 and u[0].getpixel((0, 0)) != v[0].getpixel((0, 0))


def test_a_model_free_graph_validates_offline(tmp_path: Path) -> None:
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
             "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}}}
    verdict = validate_prompt(graph, Env(Folders.create(str(tmp_path)), Knobs()))
    assert verdict.ok and verdict.outputs == ["3"]
