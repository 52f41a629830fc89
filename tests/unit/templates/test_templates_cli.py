"""`comfyq templates list|show|check` on the shipped store and on a broken one."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from comfyq.cli.main import main
from comfyq.sim.testing import txt2img
from comfyq.templates.testing import sample_spec, write_template

SHIPPED = Path(__file__).resolve().parents[3] / "templates_wf"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for key in [k for k in os.environ if k.startswith("COMFYQ_")]:
        monkeypatch.delenv(key)  # other tests' stacks may have left theirs
    return CliRunner()


def test_list_show_check_on_the_shipped_templates(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYQ_TEMPLATES_DIR", str(SHIPPED))
    listed = runner.invoke(main, ["templates", "list"])
    assert listed.exit_code == 0 and [line.split()[0] for line in listed.output.splitlines()] == [
        "img2img@1", "inpaint@1", "txt2img@1", "txt2img_sdxl@1", "upscale@1"]
    shown = runner.invoke(main, ["templates", "show", "upscale"])
    assert shown.exit_code == 0 and json.loads(shown.output)["params"]["scale"]["max"] == 8
    assert runner.invoke(main, ["templates", "show", "nope"]).exit_code == 1
    checked = runner.invoke(main, ["templates", "check", "--no-live"])
    assert checked.exit_code == 0 and "all good" in checked.output


def test_check_lists_every_problem_and_fails(runner: CliRunner, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    write_template(tmp_path, "one", sample_spec("one", cost="ceil(size *"))
    write_template(tmp_path, "two", sample_spec("two", time_limit="steps * speed"))
    monkeypatch.setenv("COMFYQ_TEMPLATES_DIR", str(tmp_path))
    checked = runner.invoke(main, ["templates", "check", "--no-live"])
    assert checked.exit_code == 1
    assert "one/spec.yaml" in checked.output and "two/spec.yaml" in checked.output and "speed" in checked.output
    listed = runner.invoke(main, ["templates", "list"])
    assert listed.exit_code == 1 and "templates check" in listed.output and "Traceback" not in listed.output


def test_custom_nodes_come_from_an_exported_catalogue(runner: CliRunner, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    graph = txt2img()
    graph["10"] = {"class_type": "FancyUpscale", "inputs": {"image": ["8", 0], "factor": 2}}
    graph["9"]["inputs"]["images"] = ["10", 0]
    write_template(tmp_path / "t", "fancy", sample_spec("fancy"), graph)
    monkeypatch.setenv("COMFYQ_TEMPLATES_DIR", str(tmp_path / "t"))
    refused = runner.invoke(main, ["templates", "check", "--no-live"])
    assert refused.exit_code == 1 and "FancyUpscale" in refused.output
    exported = tmp_path / "object_info.json"
    exported.write_text(json.dumps({"FancyUpscale": {
        "input": {"required": {"image": ["IMAGE"], "factor": ["INT", {"default": 2, "min": 1, "max": 8}]}},
        "input_order": {"required": ["image", "factor"]}, "output": ["IMAGE"], "output_is_list": [False],
        "output_name": ["IMAGE"], "name": "FancyUpscale", "display_name": "Fancy", "description": "",
        "category": "image", "output_node": False}}))
    monkeypatch.setenv("COMFYQ_TEMPLATE_CATALOGUE", str(exported))
    accepted = runner.invoke(main, ["templates", "check", "--no-live"])
    assert accepted.exit_code == 0, accepted.output
