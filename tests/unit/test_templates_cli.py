"""`comfyq templates list|show|check` on the shipped store and on a broken one."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from comfyq.cli import main
from comfyq.templates.testing import sample_spec, write_template

SHIPPED = Path(__file__).resolve().parents[2] / "templates_wf"


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
