"""README.rst: valid reStructuredText that opens with the two set-up commands."""
from __future__ import annotations

import io
import re
from pathlib import Path

import docutils.core

README = Path(__file__).resolve().parents[2] / "README.rst"
CI = Path(__file__).resolve().parents[2] / ".ci" / "run"


def test_readme_renders_without_warnings() -> None:
    warnings = io.StringIO()
    docutils.core.publish_string(README.read_text(), writer="null",
                                 settings_overrides={"warning_stream": warnings, "report_level": 2})
    assert warnings.getvalue() == ""


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    commands = re.findall(r"::\n\n    (.+)\n", README.read_text())[:2]
    assert commands == ["python3 -m pip install -e . && python3 -m comfyq up", "bash scripts/test.sh"]
    assert "scripts/test.sh" in CI.read_text()
