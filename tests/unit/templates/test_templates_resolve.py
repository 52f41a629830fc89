"""Resolving a template: params checked and completed, a filled copy of the graph, cost, time limit, guards."""
from __future__ import annotations

import copy
import json
import pickle
import random
from typing import Any

import pytest

from comfyq.errors import InvalidRequest
from comfyq.templates import GuardFailed, Param, ParamsInvalid, Template, TemplateError, UnknownTemplate
from comfyq.templates.template import Guard

STAGED = "a" * 64 + ".png"
MASK = "b" * 64 + ".webp"
GRAPH: dict[str, Any] = {
    "1": {"class_type": "Settings", "inputs": {"count": 1, "ratio": 0.5, "label": "x", "tiled": False,
                                               "mode": "a", "width": 8, "height": 8}},
    "2": {"class_type": "LoadImage", "inputs": {"image": "old.png"}},
    "3": {"class_type": "LoadImageMask", "inputs": {"image": "old.png", "channel": "red"}},
    "4": {"class_type": "KSampler", "inputs": {"seed": 0, "latent": ["1", 0]}},
    "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "t"}},
}


def make(*params: Param, cost: str = "count", time_limit: str = "60", guards: list[Guard] | None = None) -> Template:
    return Template(name="t", version=1, description="test", params={p.name: p for p in params},
                    node_labels={"4": "Sampling"}, cost_formula=cost, guards=guards or [],
                    time_limit_formula=time_limit, requires=(), workflow=copy.deepcopy(GRAPH))


EVERY_TYPE = make(
    Param("count", "int", 2, 1, 10, mode="novice", targets=(("1", "count"),)),
    Param("ratio", "float", 0.5, 0, 1, mode="novice", targets=(("1", "ratio"),)),
    Param("label", "string", "hi", max_length=5, mode="novice", targets=(("1", "label"),)),
    Param("tiled", "bool", False, mode="novice", targets=(("1", "tiled"),)),
    Param("mode", "enum", "a", choices=("a", "b"), targets=(("1", "mode"),)),
    Param("seed", "seed", mode="novice", targets=(("4", "seed"),)),
    Param("image", "image", mode="novice", targets=(("2", "image"),)),
    Param("mask", "mask", mode="novice", targets=(("3", "image"),)),
    Param("size", "int", 64, 8, 512, multiple_of=8, mode="novice", targets=(("1", "width"), ("1", "height"))),
)


def problems(excinfo: pytest.ExceptionInfo[ParamsInvalid]) -> dict[str, list[str]]:
    return excinfo.value.errors["json"]["params"]


def test_every_type_lands_at_its_target_and_the_graph_is_untouched() -> None:
    before = copy.deepcopy(EVERY_TYPE.workflow)
    resolved = EVERY_TYPE.resolve({"count": 3, "ratio": 1, "label": "yo", "tiled": True, "mode": "b", "seed": 9,
                                   "image": STAGED, "mask": MASK, "size": 128}, mode="expert")
    node = resolved.workflow["1"]["inputs"]
    assert node == {"count": 3, "ratio": 1.0, "label": "yo", "tiled": True, "mode": "b", "width": 128, "height": 128}
    assert isinstance(node["ratio"], float)
    assert resolved.workflow["4"]["inputs"] == {"seed": 9, "latent": ["1", 0]}
    assert resolved.workflow["2"]["inputs"]["image"] == STAGED and resolved.workflow["3"]["inputs"]["image"] == MASK
    assert resolved.workflow["3"]["inputs"]["channel"] == "red"
    assert EVERY_TYPE.workflow == before and resolved.workflow is not EVERY_TYPE.workflow
    assert resolved.inputs == [STAGED, MASK]


def test_one_param_feeds_several_inputs() -> None:
    resolved = EVERY_TYPE.resolve({"size": 256, "image": STAGED, "mask": MASK})
    assert (resolved.workflow["1"]["inputs"]["width"], resolved.workflow["1"]["inputs"]["height"]) == (256, 256)


def test_defaults_fill_what_the_request_leaves_out_and_null_means_unset() -> None:
    resolved = EVERY_TYPE.resolve({"image": STAGED, "mask": STAGED, "label": None})
    assert {k: resolved.params[k] for k in ("count", "ratio", "label", "tiled", "mode", "size")} == {
        "count": 2, "ratio": 0.5, "label": "hi", "tiled": False, "mode": "a", "size": 64}
    assert resolved.inputs == [STAGED]
    assert list(resolved.params) == list(EVERY_TYPE.params)


def test_unset_seed_is_random_recorded_and_reproducible() -> None:
    first = EVERY_TYPE.resolve({"image": STAGED, "mask": MASK}, rng=random.Random(1))
    seed = first.params["seed"]
    assert 0 <= seed <= 2**32 - 1 and first.workflow["4"]["inputs"]["seed"] == seed
    again = EVERY_TYPE.resolve(first.params, mode="expert")
    assert json.dumps(again.workflow, sort_keys=True).encode() == json.dumps(first.workflow, sort_keys=True).encode()
    assert again.params == first.params
    other = EVERY_TYPE.resolve({"image": STAGED, "mask": MASK}, rng=random.Random(2))
    assert other.params["seed"] != seed


def test_seeds_take_the_whole_unsigned_64_bit_range() -> None:
    assert EVERY_TYPE.resolve({"seed": 2**64 - 1, "image": STAGED, "mask": MASK}).params["seed"] == 2**64 - 1
    for bad in (2**64, -1):
        with pytest.raises(ParamsInvalid) as excinfo:
            EVERY_TYPE.resolve({"seed": bad, "image": STAGED, "mask": MASK})
        assert problems(excinfo) == {"seed": [f"must be at {'most' if bad > 0 else 'least'} "
                                              f"{2**64 - 1 if bad > 0 else 0}"]}


@pytest.mark.parametrize(("name", "value", "message"), [
    ("count", True, "must be an integer"),
    ("count", "7", "must be an integer"),
    ("count", 7.0, "must be an integer"),
    ("count", 11, "must be at most 10"),
    ("count", 0, "must be at least 1"),
    ("ratio", "0.5", "must be a number"),
    ("ratio", True, "must be a number"),
    ("ratio", float("nan"), "must be a finite number"),
    ("ratio", float("inf"), "must be a finite number"),
    ("ratio", 10**400, "must be a finite number"),
    ("ratio", 1.5, "must be at most 1"),
    ("label", 5, "must be a string"),
    ("label", "toolong", "must be at most 5 characters long"),
    ("tiled", 1, "must be true or false"),
    ("mode", "c", "must be one of: a, b"),
    ("seed", "12", "must be an integer"),
    ("image", "photo.png", "must name a staged image"),
    ("image", "A" * 64 + ".png", "must name a staged image"),
    ("mask", "c" * 64 + ".gif", "must name a staged image"),
    ("size", 100, "must be a multiple of 8"),
])
def test_bad_values_get_field_precise_errors(name: str, value: Any, message: str) -> None:
    given = {"image": STAGED, "mask": MASK, name: value}
    with pytest.raises(ParamsInvalid) as excinfo:
        EVERY_TYPE.resolve(given, mode="expert")
    assert list(problems(excinfo)) == [name] and problems(excinfo)[name][0].startswith(message)
    assert excinfo.value.message == f"params.{name}: {problems(excinfo)[name][0]}"
    assert isinstance(excinfo.value, InvalidRequest) and excinfo.value.status == 422


def test_unknown_param_names_the_known_ones() -> None:
    with pytest.raises(ParamsInvalid) as excinfo:
        EVERY_TYPE.resolve({"image": STAGED, "mask": MASK, "stepz": 3})
    assert problems(excinfo)["stepz"][0].startswith("unknown param; this template takes: count, ratio, label")


def test_expert_param_in_novice_mode_says_it_needs_expert_mode() -> None:
    with pytest.raises(ParamsInvalid) as excinfo:
        EVERY_TYPE.resolve({"image": STAGED, "mask": MASK, "mode": "b"}, mode="novice")
    assert excinfo.value.message == 'params.mode: needs expert mode: send "mode": "expert" to set it'
    assert EVERY_TYPE.resolve({"image": STAGED, "mask": MASK, "mode": "b"}, mode="expert").params["mode"] == "b"


def test_every_problem_is_listed_and_required_params_are_named() -> None:
    with pytest.raises(ParamsInvalid) as excinfo:
        EVERY_TYPE.resolve({"count": 99, "mode": "b", "nope": 1})
    assert problems(excinfo) == {
        "count": ["must be at most 10"], "mode": ['needs expert mode: send "mode": "expert" to set it'],
        "nope": [problems(excinfo)["nope"][0]], "image": ["is required"], "mask": ["is required"]}
    assert excinfo.value.message == "params.count: must be at most 10"


def test_params_must_be_an_object_and_mode_known() -> None:
    with pytest.raises(ParamsInvalid) as excinfo:
        EVERY_TYPE.resolve(["count"])  # type: ignore[arg-type]
    assert excinfo.value.errors == {"json": {"params": ["must be an object of param name → value"]}}
    with pytest.raises(InvalidRequest) as bad_mode:
        EVERY_TYPE.resolve({}, mode="wizard")
    assert bad_mode.value.errors == {"json": {"mode": ["must be one of: novice, expert"]}}


def test_measured_values_override_the_request_without_expert_mode() -> None:
    template = make(Param("image", "image", mode="novice", targets=(("2", "image"),)),
                    Param("image_width", "int", 512, 1), Param("image_height", "int", 512, 1),
                    cost="image_width * image_height / 1000")
    assert template.measured == {"image_width": "image", "image_height": "image"}
    resolved = template.resolve({"image": STAGED, "image_width": 1}, measured={"image_width": 2000,
                                                                               "image_height": 1000})
    assert (resolved.params["image_width"], resolved.params["image_height"], resolved.cost) == (2000, 1000, 2000)
    with pytest.raises(ValueError, match="lacks: other_width"):
        template.resolve({"image": STAGED}, measured={"other_width": 5})


@pytest.mark.parametrize(("formula", "count", "cost"), [
    ("count / 3", 4, 2),
    ("count * 0.1 * 3 * 10 / 3", 1, 1),  # 1.0000000000000002 in floats: no extra credit
    ("count - 5", 1, 0),
    ("ceil(count * 2.5)", 3, 8),
])
def test_cost_is_rounded_up_and_never_negative(formula: str, count: int, cost: int) -> None:
    template = make(Param("count", "int", 1, 0, 10, mode="novice", targets=(("1", "count"),)), cost=formula)
    assert template.resolve({"count": count}).cost == cost


def test_time_limit_is_the_formula_value() -> None:
    template = make(Param("count", "int", 1, 0, 100, mode="novice", targets=(("1", "count"),)),
                    time_limit="max(60, count * 7.5)")
    assert template.resolve({"count": 4}).soft_time_limit == 60.0
    assert template.resolve({"count": 40}).soft_time_limit == 300.0
    with pytest.raises(ParamsInvalid, match="time limit"):
        make(Param("count", "int", 1, 0, 100, mode="novice", targets=(("1", "count"),)),
             time_limit="count - 5").resolve({"count": 1})


def test_formula_that_fails_on_the_params_is_a_422() -> None:
    template = make(Param("count", "int", 1, 0, 10, mode="novice", targets=(("1", "count"),)), cost="10 / count")
    with pytest.raises(ParamsInvalid) as excinfo:
        template.resolve({"count": 0})
    assert "cost cannot be computed" in excinfo.value.message and excinfo.value.errors["json"]["params"]


def test_failed_guard_raises_its_message_or_is_reported() -> None:
    template = make(Param("count", "int", 1, 0, 10, mode="novice", targets=(("1", "count"),)), guards=[
        Guard("count <= 5", "count over 5 needs a bigger plan"), Guard("count != 7", "7 is unlucky")])
    with pytest.raises(GuardFailed) as excinfo:
        template.resolve({"count": 7})
    assert excinfo.value.message == "count over 5 needs a bigger plan"
    assert excinfo.value.errors == {"json": {"params": ["count over 5 needs a bigger plan", "7 is unlucky"]}}
    estimate = template.resolve({"count": 7}, check_guards=False)
    assert estimate.guard_failures == ["count over 5 needs a bigger plan", "7 is unlucky"] and estimate.cost == 7
    assert template.resolve({"count": 3}).guard_failures == []


def test_errors_pickle_with_their_context() -> None:
    for error in (GuardFailed.for_messages(["too big"]), ParamsInvalid.for_problems({"x": ["bad"]}),
                  UnknownTemplate.for_ref("nope", "no such template")):
        copied = pickle.loads(pickle.dumps(error))
        assert (type(copied), copied.message, copied.errors) == (type(error), error.message, error.errors)
    broken = pickle.loads(pickle.dumps(TemplateError("templates_wf/x/spec.yaml", "bad")))
    assert str(broken) == "templates_wf/x/spec.yaml: bad" and broken.reason == "bad"


def test_labels_fall_back_to_the_class_type_and_describe_is_json() -> None:
    assert EVERY_TYPE.label("4") == "Sampling" and EVERY_TYPE.label("2") == "LoadImage"
    assert EVERY_TYPE.label("99") is None
    described = json.loads(json.dumps(EVERY_TYPE.describe()))
    assert described["params"]["count"] == {"type": "int", "mode": "novice", "description": "", "required": False,
                                            "default": 2, "min": 1, "max": 10}
    assert described["params"]["seed"]["random_when_unset"] is True and described["params"]["seed"]["max"] == 2**64 - 1
    assert described["params"]["mode"]["choices"] == ["a", "b"] and described["params"]["image"]["required"]
    assert described["ref"] == "t@1" and described["node_labels"] == {"4": "Sampling"}


def test_fill_copies_the_whole_graph_so_the_template_never_changes() -> None:
    from comfyq.templates.graph import fill

    graph = {"1": {"class_type": "K", "inputs": {"steps": 4, "pair": ["2", 0], "opts": {"x": [1, (2, 3)]}}}}
    before = copy.deepcopy(graph)
    param = Param(name="steps", type="int", targets=(("1", "steps"),))
    filled = fill(graph, {"steps": param}, {"steps": 9})
    filled["1"]["inputs"]["pair"].append(1)
    filled["1"]["inputs"]["opts"]["x"][0] = 0
    assert graph == before and filled["1"]["inputs"]["steps"] == 9
    assert filled["1"]["inputs"]["opts"]["x"][1] == (2, 3)
