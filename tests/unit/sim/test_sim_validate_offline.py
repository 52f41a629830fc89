"""Validation runs without a server and mirrors ComfyUI's verdicts."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from comfyq.sim.catalogue import Env
from comfyq.sim.files import Folders
from comfyq.sim.knobs import Knobs
from comfyq.sim.testing import txt2img
from comfyq.sim.prompt_checks import types_match, validate_prompt


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(Folders.create(str(tmp_path)), Knobs())


def test_valid_graph_lists_its_output(env: Env) -> None:
    verdict = validate_prompt(txt2img(), env)
    assert verdict.ok and verdict.outputs == ["9"] and verdict.node_errors == {}


def test_conversions_are_written_back(env: Env) -> None:
    graph = txt2img()
    graph["3"]["inputs"]["seed"] = "12"
    graph["3"]["inputs"]["cfg"] = "6.5"
    assert validate_prompt(graph, env).ok
    assert graph["3"]["inputs"]["seed"] == 12 and graph["3"]["inputs"]["cfg"] == 6.5


def test_string_float_is_not_an_int(env: Env) -> None:
    graph = txt2img()
    graph["5"]["inputs"]["width"] = "64.5"
    verdict = validate_prompt(graph, env)
    assert verdict.node_errors["5"]["errors"][0]["type"] == "invalid_input_type"


def test_long_combo_lists_are_left_out_of_errors(env: Env) -> None:
    graph = txt2img()
    graph["3"]["inputs"]["sampler_name"] = "nope"
    error = validate_prompt(graph, env).node_errors["3"]["errors"][0]
    assert error["extra_info"]["input_config"] is None and "(list of length" in error["details"]


def test_malformed_graphs_raise_like_comfyui(env: Env) -> None:
    with pytest.raises(TypeError):
        validate_prompt("not a graph", env)
    with pytest.raises(TypeError):
        validate_prompt({"1": 5}, env)


def test_upstream_error_does_not_blame_downstream(env: Env) -> None:
    graph = copy.deepcopy(txt2img())
    graph["5"]["inputs"]["batch_size"] = 0
    verdict = validate_prompt(graph, env)
    assert list(verdict.node_errors) == ["5"]


def test_types_match_rules() -> None:
    assert types_match("IMAGE", "IMAGE")
    assert types_match("IMAGE", "*")
    assert types_match("IMAGE,MASK", "MASK")
    assert not types_match("LATENT", "IMAGE")
    assert not types_match("STRING", ["a", "b"])
