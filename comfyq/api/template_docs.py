"""One documented operation per published template: ``POST /v1/templates/<name>/runs``, its body the typed params.

An importer (Dify, a client generator) then shows real fields with their
types, ranges, enums, defaults and descriptions. Novice and expert params are
in the same operation; expert ones say so (``x-comfyq-mode: expert`` and
their description), and setting one to anything but its default makes the
request an expert one (see comfyq.api.template_runs). A param that may be
left unset is ``nullable``: null means its default (a random seed for a seed),
except an enum, whose null would have to be one of its choices (importers
offer those as a list); leaving it out gives the default.
Params measured from an uploaded image are ``readOnly``: whatever is sent is
replaced. Schemas are OpenAPI 3.0's dialect of JSON Schema.
"""
from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from werkzeug.routing import Map, Rule

from .examples import QUEUED_JOB
from .operation_ids import OPERATION_IDS
from .prefer import APPLIED_DOC, PREFER_DOC
from ..templates.params import Param
from ..templates.template import Template

TAG = "template_runs"
_TYPES = {"int": "integer", "seed": "integer", "float": "number", "bool": "boolean", "string": "string",
          "enum": "string", "image": "string", "mask": "string"}


def operation_id(name: str) -> str:
    """Return ``run<Name>`` for a template name: txt2img → runTxt2img, txt2img_sdxl → runTxt2imgSdxl."""
    return "run" + "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]+", name) if part)


def param_schema(param: Param, measured_from: str | None = None) -> dict[str, Any]:
    """Return the JSON Schema of one param's values, as strict as the API's own check."""
    found: dict[str, Any] = {"type": _TYPES[param.type]}
    low, high = param.bounds
    for key, value in (("minimum", low), ("maximum", high), ("enum", list(param.choices or ()) or None),
                       ("maxLength", param.max_length), ("multipleOf", param.multiple_of),
                       ("default", param.default)):
        if value is not None:
            found[key] = value
    text = param.description or param.name
    if param.mode == "expert":
        text = f"Expert: {text}"
    if param.type in ("image", "mask"):
        text += (" (the id or name POST /v1/uploads answered for one of your uploads, or a data: URL of a PNG, "
                 "JPEG or WebP image)")
    if measured_from:
        found["readOnly"] = True
        text += f" (measured from {measured_from}; a value sent is replaced)"
    elif not param.required and param.type != "enum":
        found["nullable"] = True  # null counts as unset: the default applies
    found["description"] = text
    found["x-comfyq-mode"] = param.mode
    return found


def body_schema(template: Template) -> dict[str, Any]:
    """Return the JSON Schema of a run's body: every param of ``template`` by name, nothing else."""
    properties = {name: param_schema(param, template.measured.get(name)) for name, param in template.params.items()}
    required = [name for name, param in template.params.items() if param.required and name not in template.measured]
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def sample(param: Param) -> Any:
    """Return a value ``param`` accepts: its default, else the least its type and bounds allow."""
    if param.default is not None:
        return param.default
    low, _ = param.bounds
    if param.type in ("int", "seed", "float"):
        least = 0 if low is None else low
        step = param.multiple_of or 1
        return -(-least // step) * step if param.type != "float" else float(least)
    upload = "6f1c2a4e-0b7d-4c1e-9a53-2d8e4f7b9c10"  # what POST /v1/uploads answers as an id
    samples = {"bool": False, "enum": (param.choices or ("",))[0], "image": upload, "mask": upload}
    return samples.get(param.type, "a lighthouse at dusk, oil painting"[:param.max_length or None])


def example(template: Template) -> dict[str, Any]:
    """Return a body an importer can show: every required param and each novice one at its default."""
    return {name: sample(param) for name, param in template.params.items()
            if name not in template.measured and (param.required or param.mode == "novice" and param.type != "seed")}


def operation(template: Template) -> dict[str, Any]:
    """Return the documented POST of one template's runs."""
    body = body_schema(template)
    queued = dict(QUEUED_JOB, template=template.name, template_version=template.version, params=example(template))
    return {
        "operationId": operation_id(template.name),
        "tags": [TAG],
        "summary": f"Run {template.name}: {template.description}",
        "description": (f"Submit a {template.ref} job with these params as the body (the newest version; "
                        f"name@version in the path runs another). It goes the way of POST /v1/jobs "
                        f"with template={template.name}: the same checks, credits and caps, and the same "
                        f"answer (`Prefer: wait=N` included). Cost in credits: {template.cost_formula}. Params marked Expert need an "
                        f"expert account unless left at their default."),
        "requestBody": {"required": bool(body.get("required")), "content": {"application/json": {
            "schema": body, "example": example(template)}}},
        "parameters": [PREFER_DOC],
        "responses": {
            "202": {"description": "the job, queued or pending", "headers": APPLIED_DOC, "content": {
                "application/json": {"schema": "Job", "example": queued}}},
            "200": {"description": "`Prefer: wait=N` and the job ended within N seconds: the ended job",
                    "headers": APPLIED_DOC, "content": {"application/json": {"schema": "Job"}}},
        },
    }


def document_runs(spec: APISpec, templates: list[Template]) -> None:
    """Add each template's run operation to ``spec`` (its plugins add the errors it answers)."""
    taken = set(OPERATION_IDS.values())
    for template in templates:
        doc = operation(template)
        while doc["operationId"] in taken:  # txt2img-x and txt2img_x: tell them apart
            doc["operationId"] += "_"
        taken.add(doc["operationId"])
        # flask-smorest's path helper reads a bound werkzeug rule; this one only names the path.
        rule = Rule(f"/v1/templates/{template.name}/runs", methods=["POST"], endpoint="template_runs.run")
        Map([rule])
        spec.path(rule=rule, operations={"post": doc})
