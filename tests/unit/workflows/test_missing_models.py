"""Model files an instance lacks are named, all of them, in one 422 before anything is queued."""
from __future__ import annotations

import pytest

from comfyq.templates.sim_catalogue import simulator_catalogue
from comfyq.workflows.published import from_object_info
from comfyq.workflows.validation import WorkflowInvalid, validate_workflow
from comfyq.sim.testing import txt2img

CATALOGUES = {"gpu0": from_object_info(simulator_catalogue())}


def test_one_missing_checkpoint_is_named_with_its_node() -> None:
    graph = txt2img()
    graph["4"]["inputs"]["ckpt_name"] = "missing.safetensors"
    with pytest.raises(WorkflowInvalid) as caught:
        validate_workflow(graph, CATALOGUES)
    exc = caught.value
    assert exc.status == 422
    assert exc.message.startswith("missing model file: 'missing.safetensors' (wanted by node 4 "
                                  "(CheckpointLoaderSimple))")
    assert exc.errors["missing_models"] == [{"file": "missing.safetensors", "nodes": [
        {"node": "4", "class_type": "CheckpointLoaderSimple", "input": "ckpt_name",
         "label": "node 4 (CheckpointLoaderSimple)"}]}]
    assert exc.errors["node_errors"]["4"]["errors"][0]["extra_info"]["missing_model"] == "missing.safetensors"


def test_every_missing_file_and_every_node_wanting_it_in_one_answer() -> None:
    graph = txt2img()
    graph["4"]["inputs"]["ckpt_name"] = "gone.ckpt"
    graph["40"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "gone.ckpt"}}
    graph["41"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "8x-Missing.pth"}}
    graph["5"]["inputs"]["width"] = -3  # another kind of problem is still reported
    with pytest.raises(WorkflowInvalid) as caught:
        validate_workflow(graph, CATALOGUES)
    missing = {m["file"]: [n["node"] for n in m["nodes"]] for m in caught.value.errors["missing_models"]}
    assert missing == {"gone.ckpt": ["4", "40"], "8x-Missing.pth": ["41"]}
    assert caught.value.message.startswith("missing model files: 'gone.ckpt'")
    assert caught.value.message.endswith("(and 1 more problem)")


def test_a_plain_combo_value_is_not_a_model() -> None:
    graph = txt2img()
    graph["3"]["inputs"]["sampler_name"] = "no-such-sampler"
    with pytest.raises(WorkflowInvalid) as caught:
        validate_workflow(graph, CATALOGUES)
    assert "missing_models" not in caught.value.errors


def test_a_model_asked_of_an_instance_with_none_of_its_kind_is_missing() -> None:
    info = simulator_catalogue()
    info["UpscaleModelLoader"]["input"]["required"]["model_name"] = [[]]  # no upscale models installed
    graph = {"41": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
             "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
             "2": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["41", 0], "image": ["1", 0]}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "up"}}}
    with pytest.raises(WorkflowInvalid) as caught:
        validate_workflow(graph, {"gpu0": from_object_info(info)})
    assert [m["file"] for m in caught.value.errors["missing_models"]] == ["4x-UltraSharp.pth"]
    assert "which has none for this input" in caught.value.errors["workflow"]["41"][0]
