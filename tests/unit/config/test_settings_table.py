"""The settings table agrees with Config, .env.example, the README, the CLI's options and every COMFYQ_* in the code."""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from comfyq.config.render import env_example, main, readme_table, with_readme_table
from comfyq.config.settings import Config, ConfigError
from comfyq.config.setting import NUMBER, WHOLE
from comfyq.config.table import INTERNAL, SETTINGS

ROOT = Path(__file__).resolve().parents[3]
DECLARED = {setting.name: setting for setting in SETTINGS}
REGENERATE = "edit comfyq/config/table.py, then run `python3 -m comfyq.config write`"
# Where COMFYQ_* names are written: the package, its tests, benchmarks, deployment files and documentation.
SCANNED = ["comfyq", "tests", "bench", "docker", "scripts", "templates_wf", "celeryconfig.py", "setup.py", "setup.cfg",
           "Procfile", "README.rst", ".env.example"]
# Names in the code that are not variables at all.
NOT_VARIABLES: set[str] = set()
NAME = re.compile(r"\bCOMFYQ_[A-Z0-9_]+\*?")


def files() -> list[Path]:
    """Return the text files to scan for COMFYQ_* names."""
    found = []
    for entry in SCANNED:
        path = ROOT / entry
        found += [p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts] \
            if path.is_dir() else [path] if path.is_file() else []
    return found


def names_in_code() -> dict[str, set[str]]:
    """Return each COMFYQ_* name (a family as ``COMFYQ_S3_*``) with the files it appears in."""
    names: dict[str, set[str]] = {}
    for path in files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for name in set(NAME.findall(text)):
            names.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return names


def test_env_example_is_generated_from_the_table() -> None:
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == env_example(), REGENERATE


def test_readme_table_is_generated_from_the_table() -> None:
    readme = (ROOT / "README.rst").read_text(encoding="utf-8")
    assert readme_table() in readme
    assert with_readme_table(readme) == readme, REGENERATE


def test_every_comfyq_variable_in_the_code_is_declared() -> None:
    found = names_in_code()
    assert "COMFYQ_INSTANCES" in found and "COMFYQ_API_THREADS" in found  # the scan sees the code
    undeclared = {}
    for name, where in found.items():
        if name.endswith("*"):  # a family, like ``COMFYQ_S3_*``: it must name some setting
            known = any(setting.startswith(name[:-1]) for setting in DECLARED)
        else:
            known = name in DECLARED or name in INTERNAL or name in NOT_VARIABLES
        if not known:
            undeclared[name] = sorted(where)
    assert not undeclared, f"declare these in comfyq/config/table.py (or INTERNAL there): {undeclared}"


def test_settings_read_outside_config_are_in_the_code() -> None:
    found = names_in_code()
    code = {name for name, where in found.items() if any(w.startswith("comfyq/") and not w.startswith("comfyq/config/")
                                                          for w in where)}
    for setting in SETTINGS:
        if setting.reader:  # Config does not read it, so its command must
            assert setting.name in code, f"{setting.name}: no command reads it; drop it from the table"
    for name in INTERNAL:
        assert name not in DECLARED and name in code, name


def test_the_table_is_well_formed() -> None:
    assert len(DECLARED) == len(SETTINGS) and all(name.startswith("COMFYQ_") for name in DECLARED)
    attributes = [setting.attribute for setting in SETTINGS if not setting.reader]
    assert len(attributes) - len(set(attributes)) == 1  # COMFYQ_CAPABILITIES refines INSTANCES
    for setting in SETTINGS:
        assert setting.doc and "\n" not in setting.doc and not setting.doc.endswith("."), setting.name
        assert setting.default_text()  # every default can be shown
        if not callable(setting.default):
            hash(setting.default)  # shared by every Config: it must not be mutable


def test_config_reads_every_setting_with_its_default() -> None:
    config = Config({})
    for setting in SETTINGS:
        if not setting.reader and setting.name != "COMFYQ_CAPABILITIES" and not callable(setting.default):
            assert getattr(config, setting.attribute) == setting.default, setting.name


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.kind in (NUMBER, WHOLE) and not s.reader],
                         ids=lambda s: s.name)
def test_every_number_names_itself_when_malformed(setting) -> None:
    with pytest.raises(ConfigError, match=f"^{setting.name}='soon' is not a number$"):
        Config({setting.name: "soon"})
    assert Config({setting.name: ""}).as_dict() == Config({}).as_dict()  # blank: the default


def test_command_options_default_as_the_table_says() -> None:
    from comfyq.cli.main import main as cli

    def options(command: click.Command) -> list[click.Parameter]:
        found = list(command.params)
        for sub in getattr(command, "commands", {}).values():
            found += options(sub)
        return found

    seen = set()
    for param in options(cli):
        if isinstance(param.envvar, str) and param.envvar.startswith("COMFYQ_"):
            setting = DECLARED[param.envvar]
            seen.add(setting.name)
            assert param.default == setting.default, setting.name
    assert {s.name for s in SETTINGS if s.reader} <= seen  # each is some command's option


def test_the_module_prints_and_writes_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env"]) == 0 and capsys.readouterr().out == env_example()
    assert main(["readme"]) == 0 and capsys.readouterr().out == readme_table()
    (tmp_path / "README.rst").write_text("Intro\n\n.. settings-table-start\n\nstale\n\n.. settings-table-end\n\nEnd\n")
    assert main(["write", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "README.rst").read_text() == f"Intro\n\n.. settings-table-start\n\n{readme_table()}\n" \
                                                    ".. settings-table-end\n\nEnd\n"
    assert (tmp_path / ".env.example").read_text() == env_example()
    (tmp_path / "README.rst").write_text("no markers\n")
    with pytest.raises(SystemExit):
        main(["write", "--root", str(tmp_path)])
