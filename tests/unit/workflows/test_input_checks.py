"""ComfyUI's input checks on a published catalogue: each refusal names node and input, ComfyUI-style detail beside."""
from __future__ import annotations

import copy
import json
from typing import Any, Callable

import pytest

from comfyq.workflows.published import from_object_info
from comfyq.workflows.node_errors import WorkflowInvalid
from comfyq.templates import simulator_catalogue
from comfyq.workflows.validation import validate_workflow
from tests.conftest import txt2img

INFO = json.loads(json.dumps(simulator_catalogue()))  # as a worker reads it from /object_info
CATALOGUE = from_object_info(INFO)
Graph = dict[str, Any]


def refused(graph: Graph, catalogues: dict[str, Any] | None = None) -> WorkflowInvalid:
    with pytest.raises(WorkflowInvalid) as info:
        validate_workflow(graph, {"gpu0": CATALOGUE} if catalogues is None else catalogues)
    return info.value


def setting(node: str, name: str, value: Any) -> Callable[[Graph], None]:
    return lambda g: g[node]["inputs"].__setitem__(name, value)


@pytest.mark.parametrize("change, node, kind, name, message", [
    (setting("3", "steps", "twenty"), "3", "invalid_input_type", "steps",
     "node 3 (KSampler): input 'steps': 'twenty' is not an INT; give a whole number from 1 to 10000"),
    (setting("3", "cfg", "high"), "3", "invalid_input_type", "cfg",
     "node 3 (KSampler): input 'cfg': 'high' is not a FLOAT; give a number from 0.0 to 100.0"),
    (setting("3", "steps", 0), "3", "value_smaller_than_min", "steps",
     "node 3 (KSampler): input 'steps': 0 is below the minimum 1; give a whole number from 1 to 10000"),
    (setting("5", "width", 99999), "5", "value_bigger_than_max", "width",
     "node 5 (EmptyLatentImage): input 'width': 99999 is above the maximum 16384; give a whole number from 16 "
     "to 16384"),
    (setting("3", "scheduler", "no-such-scheduler"), "3", "value_not_in_list", "scheduler",
     "node 3 (KSampler): input 'scheduler': 'no-such-scheduler' is not available; choose one of: 'simple', "
     "'sgm_uniform', 'karras', 'exponential', 'ddim_uniform', 'beta', 'normal', 'linear_quadratic', 'kl_optimal'"),
    (lambda g: g["3"]["inputs"].pop("seed"), "3", "required_input_missing", "seed",
     "node 3 (KSampler): input 'seed' is required but missing; give a whole number from 0 to 18446744073709551615"),
    (lambda g: g["3"]["inputs"].pop("model"), "3", "required_input_missing", "model",
     "node 3 (KSampler): input 'model' is required but missing; give a link to a node's MODEL output"),
    (setting("8", "samples", ["4", 0]), "8", "return_type_mismatch", "samples",
     "node 8 (VAEDecode): input 'samples' links to output 0 of node 4 (CheckpointLoaderSimple), which gives "
     "MODEL; it takes a link to a node's LATENT output"),
], ids=["int", "float", "min", "max", "combo", "missing-widget", "missing-link", "link-type"])
def test_each_refusal_names_node_input_and_fix(change: Callable[[Graph], None], node: str, kind: str, name: str,
                                               message: str) -> None:
    graph = txt2img()
    change(graph)
    exc = refused(graph)
    assert exc.message == message
    assert exc.errors["workflow"] == {node: [message.split(": ", 1)[1]]}
    (error,) = exc.errors["node_errors"][node]["errors"]
    assert exc.errors["node_errors"][node]["class_type"] == graph[node]["class_type"]
    assert (error["type"], error["extra_info"]["input_name"]) == (kind, name)
    if kind not in ("required_input_missing", "return_type_mismatch"):
        assert error["extra_info"]["received_value"] == graph[node]["inputs"][name]


def test_long_combo_lists_are_shown_by_their_first_choices() -> None:
    graph = txt2img()
    graph["3"]["inputs"]["sampler_name"] = "warp_drive"
    assert refused(graph).message.endswith("'warp_drive' is not available; choose one of its 35 choices, such as "
                                           "'euler', 'euler_cfg_pp', 'euler_ancestral', 'euler_ancestral_cfg_pp', "
                                           "'heun'")


@pytest.mark.parametrize("name, value", [
    ("steps", "20"), ("steps", 20.7), ("steps", True), ("cfg", "7.5"), ("steps", {"__value__": 12}),
    ("sampler_name", {"__value__": "euler"}), ("denoise", 1),
])
def test_what_comfyui_converts_is_accepted(name: str, value: Any) -> None:
    graph = txt2img()
    graph["3"]["inputs"][name] = value
    validate_workflow(graph, {"gpu0": CATALOGUE})


def test_a_wrapped_value_is_checked_unwrapped() -> None:
    graph = txt2img()
    graph["3"]["inputs"]["steps"] = {"__value__": "twenty"}
    assert "'twenty' is not an INT" in refused(graph).message


def test_every_problem_is_reported_and_counted() -> None:
    graph = txt2img()
    graph["3"]["inputs"].update(steps="twenty", cfg=500, sampler_name="warp")
    graph["5"]["inputs"]["width"] = 8
    exc = refused(graph)
    assert exc.message.endswith("(and 3 more problems)")
    assert [e["type"] for e in exc.errors["node_errors"]["3"]["errors"]] == [
        "invalid_input_type", "value_bigger_than_max", "value_not_in_list"]
    assert exc.errors["node_errors"]["5"]["errors"][0]["type"] == "value_smaller_than_min"


def test_undeclared_inputs_are_ignored_as_comfyui_ignores_them() -> None:
    graph = txt2img()
    graph["3"]["inputs"]["not_an_input"] = "anything"
    validate_workflow(graph, {"gpu0": CATALOGUE})


def test_a_value_one_instance_lacks_names_that_instance() -> None:
    other = copy.deepcopy(INFO)
    other["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = ["sdxl.safetensors"]
    graph = txt2img()
    exc = refused(graph, {"gpu0": CATALOGUE, "gpu1": from_object_info(other)})
    assert exc.message == ("missing model file: 'sd15.safetensors' (wanted by node 4 (CheckpointLoaderSimple); "
                           "not on instance(s) gpu1)")
    assert exc.errors["node_errors"]["4"]["errors"][0]["extra_info"]["instances"] == ["gpu1"]


def test_combo_options_and_multiselect_of_newer_comfyui() -> None:
    info = copy.deepcopy(INFO)
    info["Tagger"] = {"input": {"required": {
        "mode": ["COMBO", {"options": ["fast", "slow"]}],
        "tags": ["COMBO", {"options": ["a", "b", "c"], "multiselect": True}],
        "images": ["IMAGE"]}}, "output": ["STRING"], "output_node": True}
    catalogues = {"gpu0": from_object_info(info)}
    graph = txt2img()
    graph["20"] = {"class_type": "Tagger", "inputs": {"mode": "fast", "tags": {"__value__": ["a", "c"]},
                                                       "images": ["8", 0]}}
    validate_workflow(graph, catalogues)
    graph["20"]["inputs"].update(mode="medium", tags={"__value__": ["a", "z"]})
    exc = refused(graph, catalogues)
    assert [e["type"] for e in exc.errors["node_errors"]["20"]["errors"]] == ["value_not_in_list"] * 2
    assert "choose one of: 'fast', 'slow'" in exc.message


def test_union_and_wildcard_link_types_match() -> None:
    info = copy.deepcopy(INFO)
    info["Any"] = {"input": {"required": {"x": ["IMAGE,MASK"], "y": ["*"]}}, "output": ["*"], "output_node": True}
    catalogues = {"gpu0": from_object_info(info)}
    graph = txt2img()
    graph["20"] = {"class_type": "Any", "inputs": {"x": ["8", 0], "y": ["4", 0]}}
    validate_workflow(graph, catalogues)
    graph["20"]["inputs"]["x"] = ["4", 1]  # CLIP
    assert refused(graph, catalogues).errors["node_errors"]["20"]["errors"][0]["type"] == "return_type_mismatch"


def test_without_a_catalogue_values_are_left_to_the_instance() -> None:
    graph = txt2img()
    graph["3"]["inputs"]["steps"] = "twenty"
    validate_workflow(graph, {})
