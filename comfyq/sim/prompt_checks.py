"""Prompt validation with ComfyUI's error types, messages and quirks.

Like the real server, a malformed graph (a prompt that is a non-empty string,
a node that is a number) raises a plain exception that surfaces as an HTTP
500, while well-formed but invalid graphs produce the structured errors.
"""
from __future__ import annotations

import os
import traceback
from typing import Any, NamedTuple

from .catalogue import SPECS, Env, NodeSpec
from .knobs import sim_dict

Error = dict[str, Any]


class Verdict(NamedTuple):
    """What validate_prompt found: (ok, error, outputs to run, node_errors)."""

    ok: bool
    error: Error | None
    outputs: list[str]
    node_errors: dict[str, Any]


def _error(kind: str, message: str, details: str, extra: dict[str, Any] | None = None) -> Error:
    return {"type": kind, "message": message, "details": details, "extra_info": extra or {}}


def full_type_name(exc: BaseException) -> str:
    """Return an exception's type as ComfyUI reports it (no module for builtins)."""
    module = type(exc).__module__
    name = type(exc).__qualname__
    return name if module == "builtins" else f"{module}.{name}"


def types_match(received: Any, wanted: Any) -> bool:
    """Tell whether an output type may feed an input type (``*`` and unions allowed)."""
    if received == wanted:
        return True
    if not isinstance(received, str) or not isinstance(wanted, str):
        return False
    got = {t.strip() for t in received.split(",")}
    need = {t.strip() for t in wanted.split(",")}
    return "*" in got or "*" in need or bool(got & need)


def _convert(kind: Any, value: Any) -> Any:
    if kind == "INT":
        return int(value)
    if kind == "FLOAT":
        return float(value)
    if kind == "STRING":
        return str(value)
    if kind == "BOOLEAN":
        return bool(value)
    return value


class _Validator:
    """One validation pass over a prompt, remembering each node's verdict."""

    def __init__(self, prompt: dict[str, Any], env: Env) -> None:
        self.prompt = prompt
        self.env = env
        self.validated: dict[Any, tuple[bool, list[Error], Any]] = {}
        self._types: dict[str, dict[str, Any]] = {}

    def input_types(self, spec: NodeSpec) -> dict[str, Any]:
        if spec.name not in self._types:
            self._types[spec.name] = spec.inputs(self.env)
        return self._types[spec.name]

    def node(self, node_id: Any) -> tuple[bool, list[Error], Any]:
        """Validate one node and, through its links, everything upstream."""
        if node_id in self.validated:
            return self.validated[node_id]
        inputs = self.prompt[node_id]["inputs"]
        spec = SPECS[self.prompt[node_id]["class_type"]]
        types = self.input_types(spec)
        required = types.get("required", {})
        declared = {**required, **types.get("optional", {})}
        errors: list[Error] = []
        valid = True
        for name, info in declared.items():
            kind, extra = info[0], (info[1] if len(info) > 1 else {})
            config = [kind, extra]
            if name not in inputs:
                if name in required:
                    errors.append(_error("required_input_missing", "Required input is missing", name,
                                         {"input_name": name}))
                continue
            value = inputs[name]
            if isinstance(value, list):
                if len(value) != 2:
                    errors.append(_error(
                        "bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]", name,
                        {"input_name": name, "input_config": config, "received_value": value},
                    ))
                    continue
                source = value[0]
                # Deliberately unguarded: a dangling link raises here, and the caller
                # reports it as ComfyUI does (inner validation or plain validation).
                received = SPECS[self.prompt[source]["class_type"]].output[value[1]]
                if not types_match(received, kind):
                    errors.append(_error(
                        "return_type_mismatch", "Return type mismatch between linked nodes",
                        f"{name}, received_type({received}) mismatch input_type({kind})",
                        {"input_name": name, "input_config": config, "received_type": received, "linked_node": value},
                    ))
                    continue
                try:
                    if not self.node(source)[0]:
                        valid = False
                except Exception as exc:
                    valid = False
                    self.validated[source] = (False, [_error(
                        "exception_during_inner_validation", "Exception when validating inner node", str(exc),
                        {"input_name": name, "input_config": config, "exception_message": str(exc),
                         "exception_type": full_type_name(exc), "traceback": traceback.format_tb(exc.__traceback__),
                         "linked_node": value},
                    )], source)
                continue
            if isinstance(value, dict) and "__value__" in value:
                value = inputs[name] = value["__value__"]
            try:
                value = inputs[name] = _convert(kind, value)
            except Exception as exc:
                errors.append(_error(
                    "invalid_input_type", f"Failed to convert an input value to a {kind} value",
                    f"{name}, {value}, {exc}",
                    {"input_name": name, "input_config": config, "received_value": value,
                     "exception_message": str(exc)},
                ))
                continue
            if name in spec.custom_validated:
                problem = self.custom(spec, name, value)
                if problem:
                    errors.append(_error("custom_validation_failed", "Custom validation failed for node",
                                         f"{name} - {problem}", {"input_name": name}))
                continue
            problem_error = self.range_and_combo(name, kind, extra, config, value)
            if problem_error:
                errors.append(problem_error)
        reason = sim_dict(self.prompt[node_id].get("_meta")).get("reject")
        if reason:
            # As a node's own VALIDATE_INPUTS refusing: nothing in /object_info foretells it.
            errors.append(_error("custom_validation_failed", "Custom validation failed for node", str(reason)))
        verdict = (not errors and valid, errors, node_id)
        self.validated[node_id] = verdict
        return verdict

    def range_and_combo(self, name: str, kind: Any, extra: dict[str, Any], config: list[Any],
                        value: Any) -> Error | None:
        """Check min, max and combo membership; return the first problem or None."""
        info = {"input_name": name, "input_config": config, "received_value": value}
        if "min" in extra and value < extra["min"]:
            return _error("value_smaller_than_min", f"Value {value} smaller than min of {extra['min']}", name, info)
        if "max" in extra and value > extra["max"]:
            return _error("value_bigger_than_max", f"Value {value} bigger than max of {extra['max']}", name, info)
        if isinstance(kind, list) and value not in kind:
            # ComfyUI leaves long model lists out of the answer.
            listed = f"(list of length {len(kind)})" if len(kind) > 20 else str(kind)
            if len(kind) > 20:
                info["input_config"] = None
            return _error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listed}", info)
        return None

    def custom(self, spec: NodeSpec, name: str, value: Any) -> str | None:
        """Run a node's own VALIDATE_INPUTS; return the complaint or None."""
        if spec.name in ("LoadImage", "LoadImageMask") and not os.path.isfile(self.env.folders.input_path(str(value))):
            return f"Invalid image file: {value}"
        return None


def validate_prompt(prompt: Any, env: Env, partial: list[str] | None = None) -> Verdict:
    """Validate a graph the way ``POST /prompt`` does."""
    if not isinstance(prompt, dict):
        if isinstance(prompt, (str, list)) and not prompt:
            return Verdict(False, _error("prompt_no_outputs", "Prompt has no outputs", ""), [], {})
        raise TypeError(f"prompt must be an object, not {type(prompt).__name__}")
    outputs = []
    for node_id, node in prompt.items():
        if not isinstance(node, (dict, list, str)):
            raise TypeError(f"argument of type '{type(node).__name__}' is not iterable")
        if not isinstance(node, dict) or "class_type" not in node:
            return Verdict(False, _error(
                "invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node_id}'"), [], {})
        spec = SPECS.get(node["class_type"])
        if spec is None:
            return Verdict(False, _error(
                "invalid_prompt", f"Cannot execute because node {node['class_type']} does not exist.",
                f"Node ID '#{node_id}'"), [], {})
        if spec.output_node and (partial is None or node_id in partial):
            outputs.append(node_id)
    if not outputs:
        return Verdict(False, _error("prompt_no_outputs", "Prompt has no outputs", ""), [], {})

    validator = _Validator(prompt, env)
    good: list[str] = []
    failed: list[tuple[str, list[Error]]] = []
    node_errors: dict[str, Any] = {}
    for output in outputs:
        try:
            valid, reasons, _ = validator.node(output)
        except Exception as exc:
            valid, reasons = False, [_error(
                "exception_during_validation", "Exception when validating node", str(exc),
                {"exception_type": full_type_name(exc), "traceback": traceback.format_tb(exc.__traceback__)})]
            validator.validated[output] = (False, reasons, output)
        if valid:
            good.append(output)
            continue
        failed.append((output, reasons))
        for node_id, (ok, node_reasons, _) in validator.validated.items():
            # Downstream nodes of a broken one fail without reasons; ComfyUI omits them.
            if ok or not node_reasons:
                continue
            entry = node_errors.setdefault(node_id, {
                "errors": node_reasons, "dependent_outputs": [], "class_type": prompt[node_id]["class_type"]})
            entry["dependent_outputs"].append(output)
    if not good:
        lines = [f"{e['message']}: {e['details']}" for _, reasons in failed for e in reasons]
        return Verdict(False, _error("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                                     "\n".join(lines)), [], node_errors)
    return Verdict(True, None, good, node_errors)
