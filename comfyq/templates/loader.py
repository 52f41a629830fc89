"""Read one template version directory (``spec.yaml`` + ``workflow.json``) into a Template."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from .checks import directory_problems, formula_problems, label_problems, param_problems
from .errors import TemplateError
from .graph import catalogue_problems, read_workflow
from .params import Param
from .spec import read_spec
from .template import Guard, Template


def param_of(name: str, data: Mapping[str, Any]) -> Param:
    """Build a Param from its validated spec entry."""
    choices = data.get("choices")
    param = Param(
        name=name, type=data["type"], default=data.get("default"), min=data.get("min"), max=data.get("max"),
        choices=tuple(choices) if choices else None, max_length=data.get("max_length"),
        multiple_of=data.get("multiple_of"), mode=data["mode"], description=data["description"],
        targets=tuple((t.split(".", 1)[0], t.split(".", 1)[1]) for t in data["targets"]),
    )
    if param.default is not None:
        # A float param written as 7 holds 7.0, exactly what a request giving 7 gets.
        normalised, problem = param.check(param.default)
        if problem is None:
            param = replace(param, default=normalised)
    return param


def load_version(directory: Path, shown: str,
                 catalogue: Mapping[str, Any] | None) -> tuple[Template | None, list[TemplateError]]:
    """Load and check one version; return (template, []) or (None, every problem found)."""
    spec_at, graph_at = f"{shown}/spec.yaml", f"{shown}/workflow.json"
    spec, problems = read_spec(directory / "spec.yaml", spec_at)
    graph, graph_problems = read_workflow(directory / "workflow.json", catalogue)
    if graph is not None and catalogue is not None:
        graph_problems = catalogue_problems(graph, catalogue)
    problems += [TemplateError(graph_at, reason) for reason in graph_problems]
    if spec is None:
        return None, problems
    params = {name: param_of(name, data) for name, data in spec["params"].items()}
    template = Template(
        name=spec["name"], version=spec["version"], description=spec["description"], params=params,
        node_labels=dict(spec["node_labels"]), cost_formula=spec["cost"],
        guards=[Guard(g["check"], g["message"]) for g in spec["guards"]],
        time_limit_formula=spec["time_limit"], requires=tuple(spec["requires"]), workflow=graph or {},
    )
    reasons = directory_problems(directory.name, template.name, template.version)
    reasons += param_problems(params, template.measured, graph, catalogue)
    reasons += label_problems(template.node_labels, graph)
    reasons += formula_problems(spec, params)
    problems += [TemplateError(spec_at, reason) for reason in reasons]
    return (None, problems) if problems or graph is None else (template, [])
