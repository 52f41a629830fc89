"""The store: versions side by side, lookups by name or name@version, and the shipped templates."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from comfyq.templates.formulas import configure_limits

from comfyq.sim.catalogue import Env
from comfyq.sim.files import Folders
from comfyq.sim.knobs import Knobs
from comfyq.sim.prompt_checks import validate_prompt
from comfyq.templates import GuardFailed, TemplateStore, UnknownTemplate, check_templates, simulator_catalogue
from comfyq.templates.testing import sample_spec, write_template

SHIPPED = Path(__file__).resolve().parents[3] / "templates_wf"
IMAGE = "c" * 64 + ".png"
MASK = "d" * 64 + ".png"


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Any]:
    return simulator_catalogue()


@pytest.fixture(scope="module")
def shipped(catalogue: dict[str, Any]) -> TemplateStore:
    return TemplateStore.load(SHIPPED, catalogue)


@pytest.fixture
def versions(tmp_path: Path, catalogue: dict[str, Any]) -> TemplateStore:
    write_template(tmp_path, "demo", sample_spec(version=1))
    write_template(tmp_path, "demo@2", sample_spec(version=2, description="second"))
    write_template(tmp_path, "demo@10", sample_spec(version=10, description="tenth"))
    write_template(tmp_path, "group/other@3", sample_spec("other", 3))
    return TemplateStore.load(tmp_path, catalogue)


def test_versions_side_by_side_newest_by_default(versions: TemplateStore) -> None:
    assert versions.get("demo").version == 10  # numerically, not "2" > "10"
    assert versions.get("demo@2").description == "second"
    assert versions.get("demo@1").ref == "demo@1"
    assert [t.ref for t in versions.all()] == ["demo@1", "demo@2", "demo@10", "other@3"]
    assert [t.ref for t in versions.latest()] == ["demo@10", "other@3"]


@pytest.mark.parametrize(("ref", "reason"), [
    ("nope", "no such template; known templates: demo, other"),
    ("demo@4", "no version '4' of demo; versions: 1, 2, 10"),
    ("demo@latest", "no version 'latest' of demo; versions: 1, 2, 10"),
    ("", "give a template name, e.g. 'txt2img' or 'txt2img@1'"),
    (7, "give a template name, e.g. 'txt2img' or 'txt2img@1'"),
])
def test_unknown_template_or_version_is_a_field_precise_422(versions: TemplateStore, ref: Any, reason: str) -> None:
    with pytest.raises(UnknownTemplate) as excinfo:
        versions.get(ref)
    assert excinfo.value.status == 422
    assert excinfo.value.errors == {"json": {"template": [reason]}}
    assert excinfo.value.message == f"template {ref!r}: {reason}"


def test_shipped_templates_load_cleanly(shipped: TemplateStore) -> None:
    assert check_templates(SHIPPED, simulator_catalogue()) == []
    assert check_templates(SHIPPED) == []
    assert [t.ref for t in shipped.all()] == ["img2img@1", "inpaint@1", "txt2img@1", "txt2img_sdxl@1", "upscale@1"]
    assert shipped.get("txt2img_sdxl").requires == ("sdxl",)
    assert all(not t.requires for t in shipped.all() if t.name != "txt2img_sdxl")


def test_txt2img_keeps_comfyui_default_node_ids(shipped: TemplateStore) -> None:
    graph = shipped.get("txt2img").workflow
    assert {k: v["class_type"] for k, v in graph.items()} == {
        "3": "KSampler", "4": "CheckpointLoaderSimple", "5": "EmptyLatentImage", "6": "CLIPTextEncode",
        "7": "CLIPTextEncode", "8": "VAEDecode", "9": "SaveImage"}
    assert all(node["_meta"]["title"] for node in graph.values())
    assert {k: shipped.get("txt2img").label(k) for k in ("3", "8", "9")} == {
        "3": "Sampling", "8": "Decoding", "9": "Saving"}


def test_a_product_backend_needs_only_the_prompt(shipped: TemplateStore) -> None:
    resolved = shipped.get("txt2img").resolve({"prompt": "a city at night"})
    assert resolved.workflow["6"]["inputs"]["text"] == "a city at night"
    assert resolved.cost == 1 and resolved.soft_time_limit == 60.0 and resolved.guard_failures == []
    big = shipped.get("txt2img").resolve({"prompt": "x", "width": 1024, "height": 1024, "steps": 40})
    assert big.cost == 8 and big.soft_time_limit == 320.0


def _staged_env(tmp_path: Path) -> Env:
    folders = Folders.create(str(tmp_path))
    for name in (IMAGE, MASK):
        (Path(folders.input) / name).write_bytes(b"")
    return Env(folders, Knobs())


@pytest.mark.parametrize("ref", ["txt2img", "txt2img_sdxl", "img2img", "inpaint", "upscale"])
def test_every_shipped_template_fills_a_graph_the_simulator_accepts(shipped: TemplateStore, ref: str,
                                                                     tmp_path: Path) -> None:
    template = shipped.get(ref)
    given = {name: {"image": IMAGE, "mask": MASK}.get(p.type, "a test") for name, p in template.params.items()
             if p.required}
    resolved = template.resolve(given, measured={name: 640 for name in template.measured})
    verdict = validate_prompt(json.loads(json.dumps(resolved.workflow)), _staged_env(tmp_path))
    assert verdict.ok, verdict.error
    assert set(resolved.inputs) == {v for k, v in given.items() if template.params[k].type in ("image", "mask")}


def test_upscale_guard_caps_the_output_area(shipped: TemplateStore) -> None:
    upscale = shipped.get("upscale")
    assert upscale.measured == {"image_width": "image", "image_height": "image"}
    small = upscale.resolve({"image": IMAGE, "scale": 8}, measured={"image_width": 512, "image_height": 512})
    assert small.workflow["2"]["inputs"]["scale_by"] == 8.0 and small.cost == 4
    with pytest.raises(GuardFailed, match="larger than this deployment allows"):
        upscale.resolve({"image": IMAGE, "scale": 8}, measured={"image_width": 1024, "image_height": 1024})
    configure_limits(max_output_pixels=8192 * 8192)  # the cap is the deployment's
    try:
        upscale.resolve({"image": IMAGE, "scale": 8}, measured={"image_width": 1024, "image_height": 1024})
    finally:
        configure_limits(max_output_pixels=4096 * 4096)
    times = [upscale.resolve({"image": IMAGE, "scale": s}, measured={"image_width": 512, "image_height": 512})
             .soft_time_limit for s in (1, 4, 8)]
    assert times[0] < times[1] < times[2]


def test_txt2img_guard_caps_pixels(shipped: TemplateStore) -> None:
    with pytest.raises(GuardFailed, match="over 8 megapixels"):
        shipped.get("txt2img").resolve({"prompt": "x", "width": 2048, "height": 2048, "batch_size": 4}, "expert")


def test_describe_shows_what_a_form_needs(shipped: TemplateStore) -> None:
    described = json.loads(json.dumps(shipped.get("img2img").describe()))
    assert described["params"]["denoise"] == {
        "type": "float", "mode": "novice", "description": "0 keeps the image, 1 ignores it.", "required": False,
        "default": 0.6, "min": 0, "max": 1}
    assert described["params"]["image_width"]["measured_from"] == "image"
    assert described["params"]["image"]["required"] is True
    assert described["guards"] == ["the image is over 4 megapixels; send one of at most 2048×2048"]
    assert described["cost"].startswith("max(1, ceil(") and described["requires"] == []
