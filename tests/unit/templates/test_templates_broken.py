"""Broken templates fail loudly at load time, naming the file and the reason."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from comfyq.sim.testing import txt2img
from comfyq.templates import TemplateError, TemplateStore, check_templates, simulator_catalogue
from comfyq.templates.testing import sample_spec, write_template

Spec = dict[str, Any]


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Any]:
    return simulator_catalogue()


def only_problem(root: Path, catalogue: dict[str, Any] | None) -> TemplateError:
    with pytest.raises(TemplateError) as excinfo:
        TemplateStore.load(root, catalogue)
    assert check_templates(root, catalogue) == [str(excinfo.value)], "expected exactly one problem"
    return excinfo.value


def spec_with(change: Callable[[Spec], None]) -> Spec:
    spec = sample_spec()
    change(spec)
    return spec


def param(name: str, **values: Any) -> Callable[[Spec], None]:
    return lambda s: s["params"][name].update(values)


def graph_with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    graph = copy.deepcopy(txt2img())
    change(graph)
    return graph


def test_sample_spec_is_good(tmp_path: Path, catalogue: dict[str, Any]) -> None:
    write_template(tmp_path, "demo")
    assert check_templates(tmp_path, catalogue) == []
    assert TemplateStore.load(tmp_path, catalogue).get("demo").params["cfg"].default == 7.0


@pytest.mark.parametrize(("text", "reason"), [
    ("name: demo\nparams: [unclosed\n", "invalid YAML: "),
    ("name: demo\nname: other\n", "invalid YAML: key 'name' is given twice (line 2, column 1)"),
    ("- just\n- a list\n", "must be a YAML mapping"),
    ("", "must be a YAML mapping"),
])
def test_unreadable_spec(tmp_path: Path, text: str, reason: str) -> None:
    write_template(tmp_path, "demo", text)
    error = only_problem(tmp_path, None)
    assert error.path == f"{tmp_path}/demo/spec.yaml" and error.reason.startswith(reason)


@pytest.mark.parametrize(("change", "reason"), [
    (lambda s: s.update(colour="red"), "colour: Unknown field."),
    (lambda s: s.pop("cost"), "cost: Missing data for required field."),
    (lambda s: s.update(version="one"), "version: Not a valid integer."),
    (lambda s: s.update(version=0), "version: Must be greater than or equal to 1."),
    (lambda s: s.update(name="demo@1"), "name: must be 1-64 lowercase letters"),
    (lambda s: s.update(name="Poster.v2"), "name: must be 1-64 lowercase letters"),
    (param("steps", maximum=5), "params.steps.maximum: Unknown field."),
    (param("steps", type="integer"), "params.steps.type: Must be one of: int, float"),
    (param("steps", mode="guru"), "params.steps.mode: Must be one of: novice, expert."),
    (param("steps", targets="3.steps"), "params.steps.targets: Not a valid list."),
    (param("steps", targets=["3steps"]), "params.steps.targets.0: must be node_id.input_name"),
    (param("steps", min=1.5), "params.steps.min: must be an integer for a int param"),
    (param("steps", min=200), "params.steps.max: must not be below min"),
    (param("steps", choices=["1"]), "params.steps.choices: a int param takes no choices"),
    (param("prompt", min=1), "params.prompt.min: a string param takes no min"),
    (param("sampler", choices=None), "params.sampler.choices: Field may not be null."),
    (lambda s: s["params"]["sampler"].pop("choices"), "params.sampler.choices: an enum param needs choices"),
    (param("seed", default=5), "params.seed.default: a seed takes no default"),
    (lambda s: s["params"].update({"bad-name": s["params"].pop("cfg")}), "params.bad-name: must be an identifier"),
    (lambda s: s["params"].update({"ceil": s["params"].pop("cfg")}), "params.ceil: is a reserved name"),
    (lambda s: s.update(guards=[{"check": "steps < 9"}]), "guards.0.message: Missing data for required field."),
])
def test_schema_errors(tmp_path: Path, change: Callable[[Spec], None], reason: str) -> None:
    write_template(tmp_path, "demo", spec_with(change))
    error = only_problem(tmp_path, None)
    assert error.path.endswith("demo/spec.yaml") and error.reason.startswith(reason)


@pytest.mark.parametrize(("directory", "spec", "reason"), [
    ("demo", sample_spec("other"), "name 'other' does not match its directory 'demo'; name the directory 'other'"),
    ("demo@2", sample_spec(version=1), "version 1 does not match its directory 'demo@2'"),
])
def test_directory_must_agree_with_the_spec(tmp_path: Path, directory: str, spec: Spec, reason: str) -> None:
    write_template(tmp_path, directory, spec)
    assert only_problem(tmp_path, None).reason.startswith(reason)


def test_duplicate_name_and_version(tmp_path: Path) -> None:
    write_template(tmp_path, "demo", sample_spec(version=1))
    write_template(tmp_path, "demo@1", sample_spec(version=1))
    error = only_problem(tmp_path, None)
    assert error.path == f"{tmp_path}/demo@1/spec.yaml"
    assert error.reason == f"demo@1 is already defined in {tmp_path}/demo/spec.yaml"


def test_missing_workflow(tmp_path: Path) -> None:
    (write_template(tmp_path, "demo") / "workflow.json").unlink()
    error = only_problem(tmp_path, None)
    assert error.path.endswith("demo/workflow.json") and error.reason.startswith("missing")


@pytest.mark.parametrize(("workflow", "reason"), [
    ('{"3": {', "not valid JSON: Expecting property name enclosed in double quotes (line 1, column 8)"),
    ({"nodes": [], "links": []}, "this is a saved (UI-format) workflow and no node catalogue is at hand"),
    ([1, 2], "must be a JSON object of node id"),
    ({}, "workflow is empty"),
    (graph_with(lambda g: g["8"].pop("class_type")), "node 8: missing 'class_type'"),
    (graph_with(lambda g: g["8"].pop("inputs")), "node 8: 'inputs' must be an object"),
    (graph_with(lambda g: g["8"]["inputs"].update(samples=["42", 0])), "node 8: input 'samples' links to node '42'"),
    (graph_with(lambda g: g["8"]["inputs"].update(samples=[3, 0])), "node 8: input 'samples': a link is"),
])
def test_malformed_workflow(tmp_path: Path, workflow: Any, reason: str) -> None:
    write_template(tmp_path, "demo", workflow=workflow)
    errors = check_templates(tmp_path)
    assert errors and errors[0].startswith(f"{tmp_path}/demo/workflow.json: {reason}"), errors


@pytest.mark.parametrize(("workflow", "reason"), [
    (graph_with(lambda g: g["8"].update(class_type="Teleport")),
     "node 8: class_type 'Teleport' is not in the node catalogue"),
    (graph_with(lambda g: g["3"]["inputs"].pop("denoise")), "node 3 (KSampler): required input 'denoise' is missing"),
    (graph_with(lambda g: g["8"]["inputs"].update(vae=["4", 5])),
     "node 8: input 'vae' links to output 5 of node 4, which has 3 output(s)"),
    (graph_with(lambda g: g.pop("9")), "no output node (e.g. SaveImage): the graph would produce nothing"),
])
def test_workflow_against_the_catalogue(tmp_path: Path, catalogue: dict[str, Any], workflow: Any, reason: str) -> None:
    write_template(tmp_path, "demo", workflow=workflow)
    assert check_templates(tmp_path, catalogue) == [f"{tmp_path}/demo/workflow.json: {reason}"]


@pytest.mark.parametrize(("change", "reason"), [
    (param("steps", targets=["42.steps"]), "params.steps.targets: target 42.steps: node '42' is not in workflow.json"),
    (param("steps", targets=["3.stepz"]), "params.steps.targets: target 3.stepz: node 3 (KSampler) has no input"),
    (param("steps", targets=["3.model"]), "params.steps.targets: target 3.model: that input is a link"),
    (param("steps", targets=[]), "params.steps.targets: give at least one node_id.input_name"),
    (param("cfg", targets=["3.cfg", "3.steps"]), "params.cfg.targets: 3.steps is also set by param 'steps'"),
    (param("steps", default=151), "params.steps.default: 151 must be at most 150"),
    (param("steps", default="20"), "params.steps.default: '20' must be an integer"),
    (param("size", default=100), "params.size.default: 100 must be a multiple of 8"),
    (param("sampler", default="warp"), "params.sampler.default: 'warp' must be one of: euler, heun"),
    (param("prompt", default="x" * 51), "params.prompt.default: '" + "x" * 51 + "' must be at most 50 characters"),
    (lambda s: s["node_labels"].update({"42": "Ghost"}), "node_labels: node '42' is not in workflow.json"),
    (lambda s: s.update(cost="ceil(steps *"), "cost: syntax error in 'ceil(steps *'"),
    (lambda s: s.update(time_limit="stepz * 2"), "time_limit: 'stepz * 2' uses unknown name 'stepz'"),
    (lambda s: s["guards"][0].update(check="open(1)"), "guards[0].check: 'open(1)' calls something other"),
    (lambda s: s.update(time_limit="steps - 20"), "time_limit: 'steps - 20' is not above 0 with the defaults"),
    (lambda s: s.update(cost="size / (steps - 20)"), "cost: fails with the defaults: 'size / (steps - 20)' failed"),
    (lambda s: s["guards"][0].update(check="steps < 10"),
     "guards[0].check: the defaults break this guard: too much work; lower size or steps"),
])
def test_spec_against_its_graph(tmp_path: Path, change: Callable[[Spec], None], reason: str) -> None:
    write_template(tmp_path, "demo", spec_with(change))
    error = only_problem(tmp_path, None)
    assert error.path == f"{tmp_path}/demo/spec.yaml" and error.reason.startswith(reason), error


@pytest.mark.parametrize(("change", "reason"), [
    (lambda s: s["params"].update(extra={"type": "int", "default": 1, "min": 0, "max": 9, "targets": ["3.foo"]}),
     "params.extra.targets: target 3.foo: KSampler has no input 'foo' in the node catalogue"),
    (param("prompt", targets=["5.batch_size"]), "params.prompt.targets: target 5.batch_size: "
                                                "EmptyLatentImage.batch_size takes INT, not a string value"),
    (param("sampler", choices=["euler", "warp"]), "params.sampler.targets: target 3.sampler_name: "
                                                  "KSampler.sampler_name does not offer 'warp'"),
    (param("steps", max=20000), "params.steps.targets: target 3.steps: KSampler.steps accepts at most 10000"),
    (param("cfg", min=None), "params.cfg.min: Field may not be null."),
    (lambda s: s["params"]["cfg"].pop("min"), "params.cfg.targets: target 3.cfg: KSampler.cfg accepts at least 0.0"),
])
def test_targets_against_the_catalogue(tmp_path: Path, catalogue: dict[str, Any], change: Callable[[Spec], None],
                                       reason: str) -> None:
    graph = graph_with(lambda g: g["3"]["inputs"].update(foo=1))
    write_template(tmp_path, "demo", spec_with(change), graph)
    error = only_problem(tmp_path, catalogue)
    assert error.reason.startswith(reason), error


def test_only_measured_params_may_lack_targets(tmp_path: Path, catalogue: dict[str, Any]) -> None:
    def add(s: Spec) -> None:
        s["params"]["image"] = {"type": "image", "mode": "novice", "targets": []}
        s["params"]["image_width"] = {"type": "int", "default": 512, "min": 1}
    write_template(tmp_path, "demo", spec_with(add))
    assert check_templates(tmp_path, catalogue) == [
        f"{tmp_path}/demo/spec.yaml: params.image.targets: give at least one node_id.input_name; only "
        "<image>_width/<image>_height int params (filled by the API) may have none"]


def test_stray_workflow_and_missing_root(tmp_path: Path) -> None:
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "workflow.json").write_text(json.dumps(txt2img()))
    assert check_templates(tmp_path) == [f"{tmp_path}/loose/workflow.json: no spec.yaml beside it, so it is no "
                                         "template; add one"]
    assert check_templates(tmp_path / "nowhere") == [f"{tmp_path}/nowhere: no such templates directory"]


def test_check_lists_every_problem_and_load_names_the_first(tmp_path: Path, catalogue: dict[str, Any]) -> None:
    write_template(tmp_path, "a_good", sample_spec("a_good"))
    write_template(tmp_path, "b_yaml", "name: [b\n")
    write_template(tmp_path, "c_two", spec_with(lambda s: (s.update(name="c_two", cost="nope + 1"),
                                                           s["params"]["steps"].update(default=0))))
    write_template(tmp_path, "d_graph", sample_spec("d_graph"), graph_with(lambda g: g["8"].update(class_type="X")))
    problems = check_templates(tmp_path, catalogue)
    assert [p.split(": ", 1)[0] for p in problems] == [
        f"{tmp_path}/b_yaml/spec.yaml", f"{tmp_path}/c_two/spec.yaml", f"{tmp_path}/c_two/spec.yaml",
        f"{tmp_path}/d_graph/workflow.json"]
    assert "params.steps.default: 0 must be at least 1" in problems[1] and "unknown name 'nope'" in problems[2]
    with pytest.raises(TemplateError) as excinfo:
        TemplateStore.load(tmp_path, catalogue)
    assert excinfo.value.path == f"{tmp_path}/b_yaml/spec.yaml"
    assert str(excinfo.value).startswith(f"{tmp_path}/b_yaml/spec.yaml: invalid YAML")
    assert str(excinfo.value).endswith("(and 3 more; run `comfyq templates check`)")
