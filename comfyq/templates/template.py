"""One template version, and what filling it with a request's params gives."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping, NamedTuple

from . import formulas
from .errors import GuardFailed, ParamsInvalid
from .graph import fill
from .params import IMAGES, Param, complete

_system_random = random.SystemRandom()


class Guard(NamedTuple):
    """A formula that must hold before a job runs, and what users see when it does not."""

    check: str
    message: str


@dataclass(frozen=True, eq=False)
class Template:
    """A tested graph with typed params, cost, guards and time limit; its graph is never changed."""

    name: str
    version: int
    description: str
    params: dict[str, Param]
    node_labels: dict[str, str]
    cost_formula: str
    guards: list[Guard]
    time_limit_formula: str
    requires: tuple[str, ...]
    workflow: dict[str, Any] = field(repr=False)

    @property
    def ref(self) -> str:
        """Return ``name@version``."""
        return f"{self.name}@{self.version}"

    @cached_property
    def measured(self) -> dict[str, str]:
        """Return the params the API fills from uploaded images: ``<image>_width`` → ``<image>``."""
        found = {}
        for name, param in self.params.items():
            for side in ("width", "height") if param.type in IMAGES else ():
                sized = self.params.get(f"{name}_{side}")
                if sized is not None and sized.type == "int":
                    found[sized.name] = name
        return found

    def label(self, node_id: str) -> str | None:
        """Return a node's friendly name, falling back to its class type."""
        node = self.workflow.get(node_id)
        return self.node_labels.get(node_id) or (node["class_type"] if node else None)

    def describe(self) -> dict[str, Any]:
        """Return the template as ``GET /v1/templates`` shows it."""
        params = {}
        for name, param in self.params.items():
            params[name] = param.describe()
            if name in self.measured:
                params[name]["measured_from"] = self.measured[name]
        return {"name": self.name, "version": self.version, "ref": self.ref, "description": self.description,
                "params": params, "cost": self.cost_formula, "guards": [g.message for g in self.guards],
                "time_limit": self.time_limit_formula, "requires": list(self.requires),
                "node_labels": dict(self.node_labels)}

    def resolve(self, params: Mapping[str, Any], mode: str = "novice", rng: random.Random | None = None,
                check_guards: bool = True, measured: Mapping[str, Any] | None = None) -> "Resolved":
        """Check and complete params, fill a copy of the graph, compute cost, time limit and guards.

        ``measured`` holds the ``<image>_width``/``<image>_height`` values the API
        read from uploaded images; they override the request and need no expert mode.
        """
        values = complete(self.params, params, mode, rng or _system_random, measured or {})
        failures = [g.message for g in self.guards if not formulas.holds(g.check, values)]
        if failures and check_guards:
            raise GuardFailed.for_messages(failures)
        return Resolved(
            template=self, params=values, workflow=fill(self.workflow, self.params, values),
            cost=self.cost(values), soft_time_limit=self.time_limit(values), guard_failures=failures,
            inputs=list(dict.fromkeys(v for n, v in values.items() if self.params[n].type in IMAGES)),
        )

    def cost(self, values: Mapping[str, Any]) -> int:
        """Return the credits a job costs: the formula rounded up, never negative."""
        try:
            result = formulas.number(self.cost_formula, values)
        except formulas.FormulaError as exc:
            raise ParamsInvalid.for_formula("cost", exc.reason) from exc
        # Round first so float noise (1.0000000000000002) does not cost a whole extra credit.
        return max(0, math.ceil(round(result, 9)))

    def time_limit(self, values: Mapping[str, Any]) -> float:
        """Return the soft time limit in seconds."""
        try:
            result = float(formulas.number(self.time_limit_formula, values))
        except formulas.FormulaError as exc:
            raise ParamsInvalid.for_formula("time limit", exc.reason) from exc
        if result <= 0:
            raise ParamsInvalid.for_formula("time limit", f"{self.time_limit_formula!r} gave {result}, not > 0")
        return result


@dataclass
class Resolved:
    """A template filled for one job: everything the job records and runs."""

    template: Template
    params: dict[str, Any]
    workflow: dict[str, Any]
    cost: int
    soft_time_limit: float
    guard_failures: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
