"""File rules: images a workflow loads must be the sender's uploads, save prefixes plain names, catalogue or not."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from comfyq.workflows.published import from_object_info
from comfyq.workflows.file_inputs import named_files, with_stored_names
from comfyq.workflows.node_errors import WorkflowInvalid
from comfyq.templates import simulator_catalogue
from comfyq.workflows.validation import validate_workflow
from tests.conftest import txt2img

INFO = json.loads(json.dumps(simulator_catalogue()))
CATALOGUES = {"gpu0": from_object_info(INFO)}
MINE = "ab" * 32 + ".png"


def img2img(image: Any, mask: Any = None) -> dict[str, Any]:
    """Return txt2img with a LoadImage (node 10) and, if given, a LoadImageMask (node 11) in front of it."""
    graph = txt2img()
    graph["10"] = {"class_type": "LoadImage", "inputs": {"image": image}}
    graph["12"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
    graph["3"]["inputs"]["latent_image"] = ["12", 0]
    if mask is not None:
        graph["11"] = {"class_type": "LoadImageMask", "inputs": {"image": mask, "channel": "alpha"}}
        graph["13"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["12", 0], "mask": ["11", 0]}}
        graph["3"]["inputs"]["latent_image"] = ["13", 0]
    return graph


def refused(graph: dict[str, Any], catalogues: dict[str, Any], uploads: set[str]) -> WorkflowInvalid:
    with pytest.raises(WorkflowInvalid) as info:
        validate_workflow(graph, catalogues, uploads=uploads)
    return info.value


@pytest.mark.parametrize("catalogues", [CATALOGUES, {}], ids=["catalogue", "no-catalogue"])
@pytest.mark.parametrize("image, fragment", [
    ("../../../../etc/passwd", "'../../../../etc/passwd' is a path; images come only from your uploads"),
    ("/etc/passwd", "'/etc/passwd' is a path"),
    ("C:\\Windows\\win.ini", "is a path"),
    ("sub/" + MINE, "is a path"),
    ("example.png", "'example.png' is not one of your uploads; upload it (POST /v1/uploads)"),
    ("cd" * 32 + ".png", "is not one of your uploads"),  # someone else's stored name looks just like one
    (["20", 0], "input 'image' links to node 20; it must name one of your uploads itself"),
    (5, "5 is not one of your uploads"),
])
def test_an_image_that_is_not_an_upload_is_refused(catalogues: dict[str, Any], image: Any, fragment: str) -> None:
    graph = img2img(image)
    if isinstance(image, list):
        graph["20"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["4", 1]}}
    exc = refused(graph, catalogues, {MINE})
    assert exc.message.startswith("node 10 (LoadImage): input 'image'") and fragment in exc.message
    error = exc.errors["node_errors"]["10"]["errors"][-1]
    assert (error["type"], error["extra_info"]["input_name"]) == ("not_an_upload", "image")


def test_uploads_pass_and_a_mask_input_is_checked_too() -> None:
    validate_workflow(img2img(MINE, mask={"__value__": MINE}), CATALOGUES, uploads={MINE})
    exc = refused(img2img(MINE, mask="../x.png"), CATALOGUES, {MINE})
    assert exc.message.startswith("node 11 (LoadImageMask): input 'image': '../x.png' is a path")


def test_a_catalogue_flags_other_upload_inputs() -> None:
    info = copy.deepcopy(INFO)
    info["LoadPicture"] = {"input": {"required": {"picture": [["a.png"], {"image_upload": True}]}},
                           "output": ["IMAGE"], "output_node": False}
    graph = txt2img()
    graph["20"] = {"class_type": "LoadPicture", "inputs": {"picture": "../a.png"}}
    exc = refused(graph, {"gpu0": from_object_info(info)}, set())
    assert exc.message.startswith("node 20 (LoadPicture): input 'picture': '../a.png' is a path")
    assert named_files(graph, {"gpu0": from_object_info(info)}) == [("20", "picture", "../a.png")]


@pytest.mark.parametrize("class_type, name", [("LoadImageOutput", "image"), ("LoadVideo", "file"),
                                              ("LoadAudio", "audio")])
def test_comfyuis_own_loaders_are_checked_without_a_catalogue(class_type: str, name: str) -> None:
    graph = txt2img()
    graph["20"] = {"class_type": class_type, "inputs": {name: "someone_elses_00001_.png [output]"}}
    exc = refused(graph, {}, {MINE})
    assert exc.message.startswith(f"node 20 ({class_type}): input '{name}': 'someone_elses_00001_.png [output]' "
                                  "is not one of your uploads")


def test_image_inputs_are_unchecked_without_a_list_of_uploads() -> None:
    validate_workflow(img2img("example.png"), CATALOGUES)  # a template's own graph, checked at load


@pytest.mark.parametrize("prefix", [
    "../../../../tmp/x", "/tmp/x", "a/b", "a\\b", "..", "x..y", "C:x", "bell\x07", "new\nline", "", "a" * 101,
    "50%", {"__value__": "../x"},
])
def test_a_prefix_that_is_not_a_plain_name_is_refused(prefix: Any) -> None:
    graph = txt2img()
    graph["9"]["inputs"]["filename_prefix"] = prefix
    for catalogues in (CATALOGUES, {}):
        exc = refused(graph, catalogues, set())
        assert exc.message.startswith("node 9 (SaveImage): input 'filename_prefix': ")
        assert "is not a plain name" in exc.message
        error = exc.errors["node_errors"]["9"]["errors"][0]
        assert (error["type"], error["extra_info"]["input_name"]) == ("unsafe_filename_prefix", "filename_prefix")


@pytest.mark.parametrize("prefix", ["comfyq", "my run 2", "ComfyUI_%date:yyyy-MM-dd%", "a.b-c_d (1)", "日本語",
                                    "%Empty Latent Image.width%x", "a" * 100, 7])
def test_plain_prefixes_pass(prefix: Any) -> None:
    graph = txt2img()
    graph["9"]["inputs"]["filename_prefix"] = prefix
    validate_workflow(graph, CATALOGUES, uploads=set())


def test_a_linked_prefix_is_left_to_comfyui() -> None:
    info = copy.deepcopy(INFO)
    info["Text"] = {"input": {"required": {"value": ["STRING"]}}, "output": ["STRING"], "output_node": False}
    graph = txt2img()
    graph["20"] = {"class_type": "Text", "inputs": {"value": "run"}}
    graph["9"]["inputs"]["filename_prefix"] = ["20", 0]
    validate_workflow(graph, {"gpu0": from_object_info(info)}, uploads=set())


def test_upload_ids_become_stored_names() -> None:
    upload_id = "0b7e6f4c-2f55-4f0a-9d59-3c1a6f0d9e11"
    graph = img2img(upload_id, mask={"__value__": MINE})
    stored = {upload_id: MINE, MINE: MINE}
    validate_workflow(graph, CATALOGUES, uploads=stored)
    rewritten = with_stored_names(graph, CATALOGUES, stored)
    assert rewritten["10"]["inputs"]["image"] == MINE and rewritten["11"]["inputs"]["image"] == MINE
    assert graph["10"]["inputs"]["image"] == upload_id  # the request's own graph is left as sent
    plain = img2img(MINE)
    assert with_stored_names(plain, CATALOGUES, {MINE: MINE}) is plain
