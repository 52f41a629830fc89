"""A template's workflow.json may be in the editor's saved format: it is converted against the catalogue."""
from __future__ import annotations

from pathlib import Path

from comfyq.templates import TemplateStore, check_templates, simulator_catalogue
from comfyq.templates.testing import write_template
from tests.unit.workflows.test_saved_format import TXT2IMG_API, txt2img_saved


def test_a_saved_format_workflow_loads_as_its_api_graph(tmp_path: Path) -> None:
    write_template(tmp_path, "demo", workflow=txt2img_saved())
    store = TemplateStore.load(tmp_path, simulator_catalogue())
    assert store.get("demo").workflow == TXT2IMG_API
    assert check_templates(tmp_path, simulator_catalogue()) == []


def test_a_saved_format_workflow_with_an_unknown_class_names_the_node(tmp_path: Path) -> None:
    graph = txt2img_saved()
    next(n for n in graph["nodes"] if n["id"] == 8)["type"] = "Teleport"
    write_template(tmp_path, "demo", workflow=graph)
    (problem,) = check_templates(tmp_path, simulator_catalogue())
    assert problem.startswith(f"{tmp_path}/demo/workflow.json: node 8: class_type 'Teleport' is not installed")
