"""ComfyUI's input validation, run on a published catalogue: what an instance would refuse, told before queueing.

As ComfyUI's ``validate_inputs`` does: a required input must be given; a value
is converted as ComfyUI converts it (``int()``, ``float()``, ``str()``,
``bool()``, after unwrapping ``{"__value__": v}``), then checked against the
input's min, max and combo choices; a link must carry a type the input takes.
Inputs the class does not declare are ignored, as ComfyUI ignores them. Upload
inputs (LoadImage's image) get no combo check here: comfyq checks them itself
(``file_inputs``), as ComfyUI leaves them to the node's own VALIDATE_INPUTS.
"""
from __future__ import annotations

from typing import Any, Mapping

from .published import Catalogue, InputSpec
from .node_errors import Problem, input_problem, shown

LISTED_CHOICES = 10  # longer combo lists are shown by their first few
MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".gguf", ".onnx")


def is_model_file(spec: InputSpec, value: Any) -> bool:
    """Return whether a combo value names a model file: by its extension, or as a choice among model files."""
    if not isinstance(value, str) or spec.upload:
        return False
    return value.lower().endswith(MODEL_EXTENSIONS) or any(
        isinstance(c, str) and c.lower().endswith(MODEL_EXTENSIONS) for c in spec.choices[:LISTED_CHOICES])


def is_link(value: Any) -> bool:
    """Return whether ``value`` is a ``[node_id, output_index]`` link."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def unwrapped(value: Any) -> Any:
    """Return a value as ComfyUI reads it: ``{"__value__": v}`` is ``v``."""
    return value["__value__"] if isinstance(value, dict) and "__value__" in value else value


def _convert(kind: str, value: Any) -> Any:
    """Convert a literal as ComfyUI does before checking it; raise on what ComfyUI cannot convert."""
    converters: dict[str, Any] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
    return converters[kind](value) if kind in converters else value


def wanted(spec: InputSpec) -> str:
    """Return what an input takes, in words: ``a whole number from 1 to 10000``, ``one of: 'a', 'b'``."""
    if spec.kind == "COMBO":
        if not spec.choices:
            return "one of the choices the instance offers"
        listed = ", ".join(shown(c) for c in spec.choices[:LISTED_CHOICES])
        if len(spec.choices) <= LISTED_CHOICES:
            return f"one of: {listed}"
        return f"one of its {len(spec.choices)} choices, such as {', '.join(shown(c) for c in spec.choices[:5])}"
    what = {"INT": "a whole number", "FLOAT": "a number", "STRING": "text", "BOOLEAN": "true or false"}.get(spec.kind)
    if what is None:
        return f"a link to a node's {spec.kind} output"
    low, high = spec.minimum, spec.maximum
    if low is not None and high is not None:
        return f"{what} from {low} to {high}"
    if low is not None:
        return f"{what} of at least {low}"
    return f"{what} of at most {high}" if high is not None else what


def types_match(received: Any, kind: str) -> bool:
    """Return whether an output of type ``received`` may feed an input of ``kind`` (``*`` and ``A,B`` unions)."""
    if received == kind:
        return True
    if not isinstance(received, str):
        return False
    got = {t.strip() for t in received.split(",")}
    need = {t.strip() for t in kind.split(",")}
    return "*" in got or "*" in need or bool(got & need)


def _value_problem(name: str, spec: InputSpec, given: Any) -> Problem | None:
    """Return what ComfyUI would refuse in the literal ``given`` for input ``name``, or None."""
    original = unwrapped(given)
    try:
        value = _convert(spec.kind, original)
    except (TypeError, ValueError, OverflowError):
        article = "an" if spec.kind[:1] in ("A", "E", "I", "O", "U") else "a"
        return input_problem("invalid_input_type", name, f": {shown(original)} is not {article} {spec.kind}; "
                             f"give {wanted(spec)}", original)
    if spec.upload:
        return None
    try:
        if spec.minimum is not None and value < spec.minimum:
            return input_problem("value_smaller_than_min", name, f": {shown(original)} is below the minimum "
                                 f"{spec.minimum}; give {wanted(spec)}", original)
        if spec.maximum is not None and value > spec.maximum:
            return input_problem("value_bigger_than_max", name, f": {shown(original)} is above the maximum "
                                 f"{spec.maximum}; give {wanted(spec)}", original)
    except TypeError:
        pass  # a bound on a kind that is not a number: ComfyUI fails on it too, but differently; let it
    if spec.kind != "COMBO":
        return None
    if not spec.choices:
        if spec.listed and is_model_file(spec, value):  # the instance has none of this kind of model at all
            return input_problem("value_not_in_list", name, f": model file {shown(original)} is not on the "
                                 "instance, which has none for this input", original, missing_model=value)
        return None
    offered = all(map(spec.offers, value)) if spec.multiselect and isinstance(value, list) else spec.offers(value)
    if offered:
        return None
    if is_model_file(spec, value):
        return input_problem("value_not_in_list", name, f": model file {shown(original)} is not on the instance; "
                             f"choose {wanted(spec)}", original, missing_model=value)
    return input_problem("value_not_in_list", name, f": {shown(original)} is not available; choose "
                         f"{wanted(spec)}", original)


def _link_problem(name: str, spec: InputSpec, link: list[Any], workflow: Mapping[str, Any],
                  catalogue: Catalogue) -> Problem | None:
    """Return a link that carries a type the input does not take, or None."""
    source_id, index = link
    source = workflow.get(source_id)
    source_class = catalogue.get(source.get("class_type")) if isinstance(source, dict) else None
    if source_class is None or not 0 <= index < len(source_class.outputs) or spec.kind == "COMBO":
        return None  # a missing node or output is a structural problem; a combo-typed output carries its list
    received = source_class.outputs[index]
    if types_match(received, spec.kind):
        return None
    return input_problem("return_type_mismatch", name, f" links to output {index} of node {source_id} "
                         f"({source['class_type']}), which gives {received}; it takes {wanted(spec)}",
                         received_type=shown(received) if not isinstance(received, str) else received,
                         linked_node=[source_id, index])


def input_problems(node: Mapping[str, Any], workflow: Mapping[str, Any], catalogue: Catalogue) -> list[Problem]:
    """Return what one catalogue's instance would refuse in a node's inputs (nothing for a class it lacks)."""
    node_class = catalogue.get(node["class_type"])
    if node_class is None:
        return []
    inputs, problems = node["inputs"], []
    for name, spec in node_class.inputs.items():
        if name not in inputs:
            if spec.required:
                problems.append(input_problem("required_input_missing", name, f" is required but missing; give "
                                              f"{wanted(spec)}"))
            continue
        value = inputs[name]
        if isinstance(value, list):
            found = _link_problem(name, spec, value, workflow, catalogue) if is_link(value) else None
        else:
            found = _value_problem(name, spec, value)
        if found is not None:
            problems.append(found)
    return problems
