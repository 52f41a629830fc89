"""Template params: their declaration, the check of one value, and completing a request's params."""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import InvalidRequest
from .errors import ParamsInvalid

TYPES = ("int", "float", "string", "bool", "enum", "seed", "image", "mask")
NUMERIC = ("int", "float", "seed")
IMAGES = ("image", "mask")
MODES = ("novice", "expert")
SEED_MAX = 0xFFFFFFFFFFFFFFFF  # ComfyUI's KSampler accepts any unsigned 64-bit seed
RANDOM_SEED_MAX = 2**32 - 1  # random seeds stay small enough for JavaScript numbers and humans
STAGED = re.compile(r"^[0-9a-f]{64}\.(png|jpg|jpeg|webp)$")


@dataclass(frozen=True)
class Param:
    """One param of a template: its type, limits, mode and where it goes in the graph."""

    name: str
    type: str
    default: Any = None
    min: int | float | None = None
    max: int | float | None = None
    choices: tuple[str, ...] | None = None
    max_length: int | None = None
    multiple_of: int | None = None
    mode: str = "expert"
    targets: tuple[tuple[str, str], ...] = ()
    description: str = ""

    @property
    def required(self) -> bool:
        """Tell whether a request must give this param (no default, not a seed)."""
        return self.default is None and self.type != "seed"

    @property
    def bounds(self) -> tuple[int | float | None, int | float | None]:
        """Return the effective (min, max); seeds are unsigned 64-bit at most."""
        if self.type == "seed":
            return (0 if self.min is None else self.min, SEED_MAX if self.max is None else self.max)
        return self.min, self.max

    def check(self, value: Any) -> tuple[Any, str | None]:
        """Return (the value as it goes into the graph, None) or (value, why it is refused)."""
        if self.type in ("int", "seed"):
            if isinstance(value, bool) or not isinstance(value, int):
                return value, "must be an integer"
        elif self.type == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return value, "must be a number"
            if isinstance(value, int) and abs(value) > 2**1023:
                return value, "must be a finite number"
            if not math.isfinite(value):
                return value, "must be a finite number"
            value = float(value)
        elif self.type == "bool":
            if not isinstance(value, bool):
                return value, "must be true or false"
        elif self.type == "enum":
            if not isinstance(value, str) or value not in (self.choices or ()):
                return value, f"must be one of: {', '.join(self.choices or ())}"
        elif self.type in IMAGES:
            if not isinstance(value, str) or not STAGED.match(value):
                return value, "must name a staged image: <sha256 in hex>.png, .jpg, .jpeg or .webp"
        elif not isinstance(value, str):
            return value, "must be a string"
        return value, self._limit(value)

    def _limit(self, value: Any) -> str | None:
        low, high = self.bounds
        if low is not None and value < low:
            return f"must be at least {low}"
        if high is not None and value > high:
            return f"must be at most {high}"
        if self.multiple_of and value % self.multiple_of:
            return f"must be a multiple of {self.multiple_of}"
        if self.max_length is not None and len(value) > self.max_length:
            return f"must be at most {self.max_length} characters long"
        return None

    def random_seed(self, rng: random.Random) -> int:
        """Pick a seed within bounds, below 2**32 unless the bounds forbid it."""
        low, high = self.bounds
        assert low is not None and high is not None
        return rng.randint(int(low), int(min(high, max(low, RANDOM_SEED_MAX))))

    def describe(self) -> dict[str, Any]:
        """Return what a client needs to offer this param in a form."""
        low, high = self.bounds
        found = {"type": self.type, "mode": self.mode, "description": self.description, "required": self.required,
                 "default": self.default, "min": low, "max": high, "choices": list(self.choices or ()) or None,
                 "max_length": self.max_length, "multiple_of": self.multiple_of}
        if self.type == "seed":
            found["random_when_unset"] = True
        return {key: value for key, value in found.items() if value is not None}


def complete(params: Mapping[str, Param], given: Any, mode: str, rng: random.Random,
             measured: Mapping[str, Any]) -> dict[str, Any]:
    """Check a request's params and fill in defaults and seeds; raise ParamsInvalid listing every problem.

    ``measured`` values (sizes of uploaded images) replace whatever the request
    says for those params and skip the mode check. A null value counts as unset.
    """
    if mode not in MODES:
        raise InvalidRequest(f"mode: must be one of: {', '.join(MODES)}", {"json": {"mode": [
            f"must be one of: {', '.join(MODES)}"]}})
    if not isinstance(given, Mapping):
        raise ParamsInvalid("params: must be an object of param name → value",
                            {"json": {"params": ["must be an object of param name → value"]}})
    stray = set(measured) - set(params)
    if stray:
        raise ValueError(f"measured values for params the template lacks: {', '.join(sorted(stray))}")
    problems: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    for name, value in {**given, **measured}.items():
        param = params.get(name)
        if param is None:
            problems[name] = [f"unknown param; this template takes: {', '.join(params) or 'none'}"]
            continue
        if value is None:
            continue
        if mode == "novice" and param.mode == "expert" and name not in measured:
            problems[name] = ['needs expert mode: send "mode": "expert" to set it']
            continue
        value, problem = param.check(value)
        if problem:
            problems[name] = [problem]
        else:
            values[name] = value
    for name, param in params.items():
        if name in values or name in problems:
            continue
        if param.type == "seed":
            values[name] = param.random_seed(rng)
        elif param.default is not None:
            values[name] = param.default
        else:
            problems[name] = ["is required"]
    if problems:
        raise ParamsInvalid.for_problems(problems)
    return {name: values[name] for name in params}
