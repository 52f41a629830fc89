"""The tools an agent sees: one per template (its params as a JSON Schema), job status and cancel."""
from __future__ import annotations

from typing import Any

import mcp_types as types

SEED_MAX = 0xFFFFFFFFFFFFFFFF
UPLOAD_HINT = "the id of an upload of yours (POST /v1/uploads, or `comfyq upload FILE`)"
JOB_STATUS, CANCEL_JOB = "job_status", "cancel_job"
_JOB_ID = {"type": "object", "properties": {"job_id": {"type": "string", "description": "The job's id."}},
           "required": ["job_id"], "additionalProperties": False}


def is_expert(account: dict[str, Any]) -> bool:
    """Tell whether an account may set expert params (the expert level, or a trusted role)."""
    user = account.get("user") or {}
    return user.get("level") == "expert" or user.get("role") in ("admin", "service")


def param_schema(param: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON Schema of one template param as ``GET /v1/templates`` describes it."""
    kind = param["type"]
    schema: dict[str, Any] = {"type": {"int": "integer", "seed": "integer", "float": "number",
                                       "bool": "boolean"}.get(kind, "string")}
    bounds = {"minimum": param.get("min"), "maximum": param.get("max"), "multipleOf": param.get("multiple_of"),
              "maxLength": param.get("max_length"), "enum": param.get("choices"), "default": param.get("default")}
    schema.update({key: value for key, value in bounds.items() if value is not None})
    description = param.get("description") or ""
    if kind in ("image", "mask"):
        description = f"{description} Give {UPLOAD_HINT}.".strip()
    if param.get("random_when_unset"):
        schema.setdefault("minimum", 0)
        schema.setdefault("maximum", SEED_MAX)
    if description:
        schema["description"] = description
    return schema


def input_schema(template: dict[str, Any], expert: bool) -> dict[str, Any]:
    """Return a template's input schema: the params this caller may set (novices: novice params only)."""
    shown = {name: param for name, param in template["params"].items()
             if (expert or param.get("mode") == "novice") and "measured_from" not in param}
    return {"type": "object", "properties": {name: param_schema(p) for name, p in shown.items()},
            "required": [name for name, p in shown.items() if p.get("required")], "additionalProperties": False}


def template_tool(template: dict[str, Any], expert: bool) -> types.Tool:
    """Return the tool that runs one template."""
    description = (f"{template.get('description') or template['name']} Runs the template {template['ref']} as a "
                   f"job; costs {template['cost']} credits; returns a preview and links to the full images.")
    return types.Tool(name=template["name"], title=template["name"], description=description,
                      input_schema=input_schema(template, expert))


def job_tools() -> list[types.Tool]:
    """Return the tools that look at and cancel a job."""
    return [
        types.Tool(name=JOB_STATUS, description="Show a job of yours: status, position, progress, outputs, error.",
                   input_schema=_JOB_ID),
        types.Tool(name=CANCEL_JOB, description="Cancel a job of yours that has not ended; its credits come back.",
                   input_schema=_JOB_ID),
    ]


def all_tools(templates: list[dict[str, Any]], account: dict[str, Any]) -> list[types.Tool]:
    """Return every tool for this account: the templates' first, then the job tools."""
    expert = is_expert(account)
    return [template_tool(t, expert) for t in templates if t["name"] not in (JOB_STATUS, CANCEL_JOB)] + job_tools()
