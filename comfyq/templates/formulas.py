"""Cost, guard and time-limit formulas: checked by walking their syntax tree, run by simpleeval.

A formula is one Python expression over the template's params and the
functions below: arithmetic, comparisons, ``and``/``or``/``not`` and
``a if cond else b``. Nothing is ever passed to ``eval``.
"""
from __future__ import annotations

import ast
import math
import threading
from functools import lru_cache
from typing import Any, Mapping

from simpleeval import SimpleEval

FUNCTIONS = {"ceil": math.ceil, "floor": math.floor, "min": min, "max": max, "round": round, "abs": abs}
# Deployment limits formulas may name (COMFYQ_MAX_OUTPUT_PIXELS), set by configure_limits().
LIMITS: dict[str, float] = {"max_output_pixels": 4096 * 4096}
CONSTANTS = {"True": True, "False": False}
RESERVED = frozenset(FUNCTIONS) | frozenset(CONSTANTS) | frozenset(LIMITS)


def configure_limits(**limits: float) -> None:
    """Set the deployment limits formulas see (known names only)."""
    unknown = set(limits) - set(LIMITS)
    if unknown:
        raise ValueError(f"unknown formula limit(s): {', '.join(sorted(unknown))}")
    LIMITS.update(limits)
ALLOWED = (
    ast.Expression, ast.Constant, ast.Name, ast.Load, ast.Call, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare,
    ast.IfExp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd, ast.Not,
    ast.And, ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
)


class FormulaError(Exception):
    """A formula could not be computed from the values given."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(source, reason)
        self.source = source
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def check(source: str, names: set[str]) -> str | None:
    """Return why a formula is unusable with these param names, or None when it is fine."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        return f"syntax error in {source!r}: {exc.msg} (column {exc.offset})"
    for node in ast.walk(tree):
        if not isinstance(node, ALLOWED):
            return f"{source!r} uses {type(node).__name__}, which formulas do not allow"
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                return f"{source!r} calls something other than {', '.join(FUNCTIONS)}"
            if node.keywords:
                return f"{source!r} passes keyword arguments, which formulas do not allow"
        elif isinstance(node, ast.Name) and node.id not in names and node.id not in RESERVED:
            known = ", ".join(sorted(names)) or "none"
            return f"{source!r} uses unknown name {node.id!r} (params: {known}; functions: {', '.join(FUNCTIONS)})"
    return None


def names_in(source: str) -> set[str]:
    """Return the param names a (checked) formula reads."""
    tree = ast.parse(source.strip(), mode="eval")
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in RESERVED}


@lru_cache(maxsize=512)
def _parsed(source: str) -> ast.AST:
    return SimpleEval.parse(source)  # type: ignore[no-any-return]


_evaluators = threading.local()


def _evaluator() -> SimpleEval:
    """Return this thread's evaluator: building one costs more than most formulas (a batch plans hundreds)."""
    found = getattr(_evaluators, "evaluator", None)
    if found is None:
        found = _evaluators.evaluator = SimpleEval(functions=dict(FUNCTIONS))
    return found


def evaluate(source: str, values: Mapping[str, Any]) -> Any:
    """Compute a formula from param values; raise FormulaError when it cannot be."""
    evaluator = _evaluator()
    evaluator.names = {**CONSTANTS, **LIMITS, **values}
    try:
        return evaluator.eval(source, previously_parsed=_parsed(source))
    except Exception as exc:  # simpleeval's own errors, ZeroDivisionError, TypeError, OverflowError...
        raise FormulaError(source, f"{source!r} failed: {exc or type(exc).__name__}") from exc


def number(source: str, values: Mapping[str, Any]) -> float:
    """Compute a formula that must give a finite number."""
    result = evaluate(source, values)
    try:
        finite = not isinstance(result, bool) and isinstance(result, (int, float)) and math.isfinite(result)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite or abs(result) > 2**53:
        raise FormulaError(source, f"{source!r} gave {result!r}, not a finite number of usable size")
    return result


def holds(source: str, values: Mapping[str, Any]) -> bool:
    """Tell whether a guard formula holds; one that cannot be computed does not."""
    try:
        return bool(evaluate(source, values))
    except FormulaError:
        return False

