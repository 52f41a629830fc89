"""Workflow validation: structure, links and catalogue classes (inputs: test_input_checks.py)."""
from __future__ import annotations

from typing import Any

import pytest

from comfyq.workflows.published import from_object_info
from comfyq.templates import simulator_catalogue
from comfyq.workflows.validation import WorkflowInvalid, validate_workflow
from tests.conftest import txt2img

CATALOGUE = from_object_info(simulator_catalogue())


def problem(workflow: dict[str, Any], catalogues: dict | None = None) -> WorkflowInvalid:
    with pytest.raises(WorkflowInvalid) as info:
        validate_workflow(workflow, {"gpu0": CATALOGUE} if catalogues is None else catalogues)
    return info.value


def test_valid_graph_passes() -> None:
    validate_workflow(txt2img(), {"gpu0": CATALOGUE})
    validate_workflow(txt2img(), {})


def test_missing_class_type_names_the_node() -> None:
    graph = txt2img()
    del graph["3"]["class_type"]
    exc = problem(graph)
    assert exc.message.startswith("node 3: missing 'class_type'")
    assert "3" in exc.errors["workflow"]


def test_dangling_link_names_source_and_input() -> None:
    graph = txt2img()
    graph["8"]["inputs"]["samples"] = ["42", 0]
    assert "input 'samples' links to node '42', which is not in the workflow" in problem(graph).message


def test_output_index_past_the_end_is_refused() -> None:
    graph = txt2img()
    graph["8"]["inputs"]["vae"] = ["4", 3]
    assert "has 3 output(s)" in problem(graph).message


def test_negative_index_and_float_index_are_refused() -> None:
    graph = txt2img()
    graph["8"]["inputs"]["vae"] = ["4", -1]
    assert "indexes start at 0" in problem(graph).message
    graph["8"]["inputs"]["vae"] = ["4", 1.5]
    assert "integer index" in problem(graph).message


def test_unknown_class_names_the_instance() -> None:
    graph = txt2img()
    graph["3"]["class_type"] = "RunPythonCode"
    assert "not installed on instance(s) gpu0" in problem(graph).message


def test_no_output_node() -> None:
    graph = txt2img()
    del graph["9"]
    assert "no output node" in problem(graph).message


def test_node_not_an_object_and_inputs_not_an_object() -> None:
    assert "must be an object" in problem({"1": 5}).message
    assert "'inputs' must be an object" in problem({"1": {"class_type": "SaveImage", "inputs": []}}).message


def test_empty_and_too_large() -> None:
    assert "empty" in problem({}).message
    with pytest.raises(WorkflowInvalid, match="limit is 2"):
        validate_workflow(txt2img(), {}, max_nodes=2)


def test_several_problems_are_counted() -> None:
    graph = txt2img()
    del graph["6"]["class_type"]
    del graph["7"]["class_type"]
    exc = problem(graph)
    assert "(and 1 more problem)" in exc.message
    assert set(exc.errors["workflow"]) == {"6", "7"}


def test_shared_queue_needs_the_class_on_every_instance() -> None:
    partial = {k: v for k, v in CATALOGUE.items() if k != "KSampler"}
    exc = problem(txt2img(), {"gpu0": CATALOGUE, "gpu1": partial})
    assert "not installed on instance(s) gpu1" in exc.message
