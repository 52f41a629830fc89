"""Load-time checks of a parsed spec against its graph: targets, labels, formulas, defaults."""
from __future__ import annotations

from typing import Any, Mapping

from . import formulas
from .graph import target_problem
from .params import Param


def directory_problems(directory: str, name: str, version: int) -> list[str]:
    """Return how a spec's name and version disagree with its directory (``name`` or ``name@version``)."""
    base, at, written = directory.partition("@")
    expected = f"name the directory {name!r} or '{name}@{version}'"
    if base != name:
        return [f"name {name!r} does not match its directory {directory!r}; {expected}"]
    if at and written != str(version):
        return [f"version {version} does not match its directory {directory!r}; {expected}"]
    return []


def param_problems(params: Mapping[str, Param], measured: Mapping[str, str], graph: Mapping[str, Any] | None,
                   catalogue: Mapping[str, Any] | None) -> list[str]:
    """Return problems of the params: defaults, targets, inputs set twice."""
    problems: list[str] = []
    owners: dict[tuple[str, str], str] = {}
    for name, param in params.items():
        if param.default is not None:
            _, problem = param.check(param.default)
            if problem:
                problems.append(f"params.{name}.default: {param.default!r} {problem}")
        if not param.targets and name not in measured:
            problems.append(f"params.{name}.targets: give at least one node_id.input_name; only "
                            "<image>_width/<image>_height int params (filled by the API) may have none")
        for node_id, input_name in param.targets:
            found = target_problem(graph, catalogue, param, node_id, input_name) if graph is not None else None
            owner = owners.setdefault((node_id, input_name), name)
            if found:
                problems.append(f"params.{name}.targets: {found}")
            elif owner != name:
                problems.append(f"params.{name}.targets: {node_id}.{input_name} is also set by param {owner!r}")
    return problems


def label_problems(labels: Mapping[str, str], graph: Mapping[str, Any] | None) -> list[str]:
    """Return the node_labels that name nodes the graph lacks."""
    if graph is None:
        return []
    return [f"node_labels: node {node_id!r} is not in workflow.json" for node_id in labels if node_id not in graph]


def formula_problems(spec: Mapping[str, Any], params: Mapping[str, Param]) -> list[str]:
    """Return formulas that do not parse or use unknown names, then those the defaults break."""
    named = [("cost", spec["cost"], None), ("time_limit", spec["time_limit"], None)]
    named += [(f"guards[{i}].check", g["check"], g["message"]) for i, g in enumerate(spec["guards"])]
    problems = []
    for where, source, _ in named:
        found = formulas.check(source, set(params))
        if found:
            problems.append(f"{where}: {found}")
    if problems:
        return problems
    # Only formulas whose every name has a valid default can be tried before a request comes.
    checked = {name: p.check(p.default) for name, p in params.items() if p.default is not None}
    defaults = {name: value for name, (value, problem) in checked.items() if problem is None}
    for where, source, message in named:
        if not formulas.names_in(source) <= set(defaults):
            continue
        try:
            if message is not None:
                if not formulas.evaluate(source, defaults):
                    problems.append(f"{where}: the defaults break this guard: {message}")
            elif formulas.number(source, defaults) <= 0 and where == "time_limit":
                problems.append(f"time_limit: {source!r} is not above 0 with the defaults")
        except formulas.FormulaError as exc:
            problems.append(f"{where}: fails with the defaults: {exc.reason}")
    return problems
