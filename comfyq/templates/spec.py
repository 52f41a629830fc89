"""``spec.yaml``: its YAML reading (duplicate keys refused) and its schema."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import yaml
from marshmallow import Schema, ValidationError, fields, pre_load, validates_schema
from marshmallow.validate import Length, NoneOf, OneOf, Range, Regexp

from .errors import TemplateError
from .formulas import RESERVED
from .params import MODES, NUMERIC, TYPES

NAME = Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$",
              error="must be 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit")
IDENTIFIER = Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$", error="must be an identifier (letters, digits, '_') for formulas")
TARGET = Regexp(r"^[^.\s]+\.\S+$", error="must be node_id.input_name, e.g. '3.seed'")


class Numeric(fields.Field):
    """An int or float kept as written (never a bool or a string)."""

    default_error_messages = {"invalid": "Not a finite number."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.make_error("invalid")
        return value


class ParamSchema(Schema):
    """One entry of ``params``."""

    type = fields.String(required=True, validate=OneOf(TYPES))
    default = fields.Raw()
    min = Numeric()
    max = Numeric()
    choices = fields.List(fields.String(), validate=Length(min=1))
    max_length = fields.Integer(strict=True, validate=Range(min=1))
    multiple_of = fields.Integer(strict=True, validate=Range(min=1))
    mode = fields.String(load_default="expert", validate=OneOf(MODES))
    targets = fields.List(fields.String(validate=TARGET), load_default=list)
    description = fields.String(load_default="")

    @validates_schema
    def consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        """Refuse keys that do not fit the param's type."""
        kind, errors = data.get("type"), {}
        if kind == "enum" and "choices" not in data:
            errors["choices"] = ["an enum param needs choices"]
        for key, fits in (("choices", kind == "enum"), ("max_length", kind == "string"),
                          ("multiple_of", kind == "int"), ("min", kind in NUMERIC), ("max", kind in NUMERIC)):
            if key in data and not fits:
                errors[key] = [f"a {kind} param takes no {key}"]
        for key in ("min", "max"):
            if kind in ("int", "seed") and isinstance(data.get(key), float):
                errors[key] = [f"must be an integer for a {kind} param"]
        if isinstance(data.get("min"), (int, float)) and isinstance(data.get("max"), (int, float)) \
                and data["min"] > data["max"]:
            errors["max"] = ["must not be below min"]
        if kind == "seed" and "default" in data:
            errors["default"] = ["a seed takes no default: left unset, it is random"]
        if errors:
            raise ValidationError(errors)


class GuardSchema(Schema):
    """One entry of ``guards``."""

    check = fields.String(required=True, validate=Length(min=1))
    message = fields.String(required=True, validate=Length(min=1))


class SpecSchema(Schema):
    """A whole ``spec.yaml``."""

    name = fields.String(required=True, validate=NAME)
    version = fields.Integer(required=True, strict=True, validate=Range(min=1))
    description = fields.String(required=True)
    params = fields.Dict(keys=fields.String(validate=[IDENTIFIER, NoneOf(RESERVED, error="is a reserved name")]),
                         values=fields.Nested(ParamSchema), load_default=dict)
    node_labels = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    cost = fields.String(required=True, validate=Length(min=1))
    guards = fields.List(fields.Nested(GuardSchema), load_default=list)
    time_limit = fields.String(required=True, validate=Length(min=1))
    requires = fields.List(fields.String(validate=Length(min=1)), load_default=list)

    @pre_load
    def plain_yaml(self, data: Any, **kwargs: Any) -> Any:
        """Accept what YAML makes of ``3: Sampling`` and ``time_limit: 60``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("node_labels"), dict):
            data["node_labels"] = {str(k) if isinstance(k, int) else k: v for k, v in data["node_labels"].items()}
        for key in ("cost", "time_limit"):
            if isinstance(data.get(key), (int, float)) and not isinstance(data.get(key), bool):
                data[key] = str(data[key])
        return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _flatten(messages: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    if isinstance(messages, dict):
        for key, sub in messages.items():
            # fields.Dict nests errors under "key" / "value"; the param name already says which.
            dict_part = len(path) == 2 and path[0] in ("params", "node_labels") and key in ("key", "value")
            yield from _flatten(sub, path if dict_part else path + (str(key),))
    elif isinstance(messages, list):
        for item in messages:
            if isinstance(item, str):
                yield ".".join(path), item
            else:
                yield from _flatten(item, path)


def read_spec(path: Path, shown: str) -> tuple[dict[str, Any] | None, list[TemplateError]]:
    """Parse and validate one spec file; return (spec, []) or (None, its problems)."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return None, [TemplateError(shown, f"invalid YAML: {getattr(exc, 'problem', None) or exc}{where}")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [TemplateError(shown, f"cannot read: {exc}")]
    if not isinstance(raw, dict):
        return None, [TemplateError(shown, "must be a YAML mapping with name, version, description, params, "
                                           "cost and time_limit")]
    try:
        return SpecSchema().load(raw), []
    except ValidationError as exc:
        return None, [TemplateError(shown, f"{where}: {what}" if where else what)
                      for where, what in _flatten(exc.messages)]
