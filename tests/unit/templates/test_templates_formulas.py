"""Formulas: checked by their syntax tree at load time, computed by simpleeval, never eval."""
from __future__ import annotations

import pytest

from comfyq.templates import formulas


@pytest.mark.parametrize(("source", "expected"), [
    ("ceil(width * height / 262144 * steps / 20)", None),
    ("max(60, steps * 2) if steps > 10 else 30", None),
    ("width * height * scale**2 <= 4096*4096 and not tiled", None),
    ("width *", "syntax error"),
    ("width; import os", "syntax error"),
    ("width * heigth", "unknown name 'heigth'"),
    ("__import__('os').system('true')", "calls something other than"),
    ("width.bit_length()", "calls something other than"),
    ("width.real", "uses Attribute"),
    ("lambda: 1", "uses Lambda"),
    ("[width][0]", "uses Subscript"),
    ("max(width, key=abs)", "keyword arguments"),
    ("width << 2", "uses LShift"),
])
def test_check_walks_the_tree(source: str, expected: str | None) -> None:
    problem = formulas.check(source, {"width", "height", "steps", "scale", "tiled"})
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


def test_unknown_name_lists_the_known_ones() -> None:
    problem = formulas.check("stepz * 2", {"steps", "width"})
    assert problem is not None and "params: steps, width" in problem and "ceil" in problem


def test_evaluate_uses_params_and_functions() -> None:
    source = "ceil(a / 3) + floor(2.7) + min(a, 1) + abs(-2) + round(1.4)"
    assert formulas.evaluate(source, {"a": 4}) == 2 + 2 + 1 + 2 + 1
    assert formulas.evaluate("a > 1 and flag == True", {"a": 2, "flag": True}) is True


def test_number_refuses_non_numbers_and_failures() -> None:
    with pytest.raises(formulas.FormulaError, match="not a finite number"):
        formulas.number("a > 1", {"a": 2})
    with pytest.raises(formulas.FormulaError, match="failed"):
        formulas.number("1 / a", {"a": 0})
    assert formulas.number("a * 1.5", {"a": 2}) == 3.0


def test_guard_that_cannot_be_computed_does_not_hold() -> None:
    assert formulas.holds("a < 2", {"a": 1})
    assert not formulas.holds("a < 2", {"a": 3})
    assert not formulas.holds("1 / a < 2", {"a": 0})


def test_names_in_leaves_functions_out() -> None:
    assert formulas.names_in("max(60, steps * width) if True else ceil(height)") == {"steps", "width", "height"}


def test_huge_powers_are_refused_not_computed() -> None:
    with pytest.raises(formulas.FormulaError):
        formulas.evaluate("a ** 99999999", {"a": 10})


def test_one_formulas_names_never_reach_the_next() -> None:
    import threading

    assert formulas.evaluate("width * 2", {"width": 3}) == 6
    with pytest.raises(formulas.FormulaError):
        formulas.evaluate("width * 2", {"height": 3})  # the evaluator is reused; the names are not
    answers: list[object] = []
    other = threading.Thread(target=lambda: answers.append(formulas.evaluate("width + 1", {"width": 41})))
    other.start()
    other.join()
    assert answers == [42] and formulas.evaluate("width", {"width": 5}) == 5
