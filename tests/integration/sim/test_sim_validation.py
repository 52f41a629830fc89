"""``POST /prompt`` rejects bad graphs with ComfyUI's exact error shapes."""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterator

import pytest
import requests

from comfyq.sim.process import SimProcess
from comfyq.sim.testing import Listener, txt2img

Graph = dict[str, Any]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with SimProcess() as process:
        yield process


def submit(sim: SimProcess, body: Any) -> requests.Response:
    return requests.post(f"{sim.url}/prompt", json=body, timeout=5)


def edit(change: Callable[[Graph], None]) -> Graph:
    graph = copy.deepcopy(txt2img())
    change(graph)
    return graph


def _set(node: str, name: str, value: Any) -> Callable[[Graph], None]:
    return lambda g: g[node]["inputs"].__setitem__(name, value)


def _drop(node: str, name: str) -> Callable[[Graph], None]:
    return lambda g: g[node]["inputs"].pop(name)


@pytest.mark.parametrize(("graph", "node", "kind", "input_name"), [
    (edit(_drop("3", "seed")), "3", "required_input_missing", "seed"),
    (edit(_set("5", "width", "abc")), "5", "invalid_input_type", "width"),
    (edit(_set("5", "width", 99999)), "5", "value_bigger_than_max", "width"),
    (edit(_set("5", "width", 8)), "5", "value_smaller_than_min", "width"),
    (edit(_set("3", "steps", 0)), "3", "value_smaller_than_min", "steps"),
    (edit(_set("8", "samples", ["4", 0])), "8", "return_type_mismatch", "samples"),
    (edit(_set("3", "sampler_name", "warp_drive")), "3", "value_not_in_list", "sampler_name"),
    (edit(_set("4", "ckpt_name", "missing.safetensors")), "4", "value_not_in_list", "ckpt_name"),
    (edit(_set("3", "model", ["99", 0])), "3", "exception_during_inner_validation", "samples"),
    (edit(_set("3", "model", ["4", 7])), "3", "exception_during_inner_validation", "samples"),
], ids=["missing", "type", "max", "min", "steps-min", "link-type", "combo", "ckpt-combo", "dangling", "bad-index"])
def test_node_error_shapes(sim: SimProcess, graph: Graph, node: str, kind: str, input_name: str) -> None:
    response = submit(sim, {"prompt": graph})
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["error"]["message"] == "Prompt outputs failed validation"
    assert set(body["error"]) == {"type", "message", "details", "extra_info"}
    entry = body["node_errors"][node]
    assert entry["class_type"] == graph[node]["class_type"]
    assert entry["dependent_outputs"] == ["9"]
    error = entry["errors"][0]
    assert set(error) == {"type", "message", "details", "extra_info"}
    assert error["type"] == kind
    assert error["extra_info"]["input_name"] == input_name
    if kind == "value_not_in_list":
        assert error["extra_info"]["received_value"] == graph[node]["inputs"][input_name]


def test_dangling_link_on_output_node_is_plain_validation_exception(sim: SimProcess) -> None:
    body = submit(sim, {"prompt": edit(_set("9", "images", ["42", 0]))}).json()
    assert body["node_errors"]["9"]["errors"][0]["type"] == "exception_during_validation"


def test_missing_load_image_file_fails_custom_validation(sim: SimProcess) -> None:
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "not-uploaded.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    body = submit(sim, {"prompt": graph}).json()
    error = body["node_errors"]["1"]["errors"][0]
    assert error["type"] == "custom_validation_failed"
    assert "Invalid image file: not-uploaded.png" in error["details"]


@pytest.mark.parametrize(("body", "kind"), [
    ({"prompt": edit(lambda g: g["3"].__setitem__("class_type", "NoSuchNode"))}, "invalid_prompt"),
    ({"prompt": edit(lambda g: g["3"].pop("class_type"))}, "invalid_prompt"),
    ({"prompt": edit(lambda g: g.pop("9"))}, "prompt_no_outputs"),
    ({"prompt": {}}, "prompt_no_outputs"),
    ({"client_id": "x"}, "no_prompt"),
])
def test_prompt_level_error_shapes(sim: SimProcess, body: dict[str, Any], kind: str) -> None:
    response = submit(sim, body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["error"]["type"] == kind
    assert set(payload["error"]) == {"type", "message", "details", "extra_info"}
    assert payload["node_errors"] == {}


def test_non_json_body_is_plain_text_500(sim: SimProcess) -> None:
    response = requests.post(f"{sim.url}/prompt", data=b"{not json", timeout=5)
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/plain")


def test_string_prompt_is_plain_text_500(sim: SimProcess) -> None:
    response = submit(sim, {"prompt": '{"3": {"class_type": "KSampler"}}'})
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/plain")


def test_numbers_as_float_or_string_are_accepted_for_int(sim: SimProcess) -> None:
    client = Listener(sim.ws_url)
    client.recv()
    graph = edit(_set("5", "width", 64.7))
    graph["5"]["inputs"]["height"] = "64"
    response = submit(sim, {"prompt": graph, "client_id": client.client_id})
    assert response.status_code == 200 and response.json()["node_errors"] == {}
    pid = response.json()["prompt_id"]
    client.until_done(pid)
    client.close()
    stored = requests.get(f"{sim.url}/history/{pid}", timeout=5).json()[pid]["prompt"][2]
    assert stored["5"]["inputs"]["width"] == 64 and stored["5"]["inputs"]["height"] == 64


def test_one_invalid_branch_of_two_is_200_and_only_valid_branch_runs(sim: SimProcess) -> None:
    graph = txt2img(seed=77)
    graph["10"] = {"class_type": "ImageScale", "inputs": {"image": ["8", 0], "upscale_method": "sideways",
                                                          "width": 32, "height": 32, "crop": "disabled"}}
    graph["11"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "bad"}}
    client = Listener(sim.ws_url)
    client.recv()
    response = submit(sim, {"prompt": graph, "client_id": client.client_id})
    assert response.status_code == 200
    answer = response.json()
    assert answer["node_errors"]["10"]["errors"][0]["type"] == "value_not_in_list"
    assert answer["node_errors"]["10"]["dependent_outputs"] == ["11"]
    messages = client.until_done(answer["prompt_id"])
    client.close()
    ran = {m["data"]["node"] for m in messages if m["type"] == "executing" and m["data"]["node"]}
    assert "9" in ran and not ran & {"10", "11"}
    entry = requests.get(f"{sim.url}/history/{answer['prompt_id']}", timeout=5).json()[answer["prompt_id"]]
    assert list(entry["outputs"]) == ["9"] and entry["prompt"][4] == ["9"]
