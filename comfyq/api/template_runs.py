"""``POST /v1/templates/<ref>/runs``: run one template with its params as the whole body.

The shape low-code tools and agents want: no ``template``/``params``/``mode``
envelope, the body is the form. It is a submission like ``POST /v1/jobs`` with
``template=<ref>`` (comfyq.api.jobs.submit: the same checks, credits, caps,
rate limit and answer). The request is an expert one only when it sets an
expert param to something other than its default, because importers such as
Dify send every documented default; a novice account can use the tool as is.
"""
from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import INCLUDE, Schema

from ..errors import InvalidRequest, NotFound
from ..templates.errors import ParamsInvalid
from ..templates.template import Template
from .jobs import submit
from .parser import Blueprint
from .schemas import JobSchema
from .template_docs import TAG

bp = Blueprint(TAG, __name__, url_prefix="/v1/templates",
               description="Run a template with its params as the body: one operation per template")


class RunParamsSchema(Schema):
    """The params of a template run, by name (each template's own operation lists them)."""

    class Meta:
        unknown = INCLUDE


def params_and_mode(template: Template, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Return the params to submit, expert params left at their default dropped, and the mode they need.

    Raise ParamsInvalid for a null enum, which the document does not allow.
    """
    params, expert = {}, False
    for name, value in body.items():
        param = template.params.get(name)
        if param is not None and param.type == "enum" and value is None:  # as the document says: no null choice
            raise ParamsInvalid.for_problems({name: [f"must be one of: {', '.join(param.choices or ())}; "
                                                     f"leave it out for the default"]})
        if param is not None and param.mode == "expert" and name not in template.measured and value is not None:
            checked, problem = param.check(value)
            if problem is None and checked == param.default:
                continue  # the tool filled in the default: nothing an expert chose
            expert = True
        params[name] = value
    return params, "expert" if expert else "novice"


@bp.route("/<ref>/runs", methods=["POST"])
@bp.arguments(RunParamsSchema, example={"prompt": "a lighthouse at dusk", "steps": 4})
@bp.response(202, JobSchema)
def run(body: dict[str, Any], ref: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Submit a job of template ``ref`` (``name``: the newest version, or ``name@version``), the body its params.

    Each template's own operation (runTxt2img, …) documents its params with their types, limits and defaults.
    """
    try:
        template = current_app.extensions["templates"].get(ref)
    except InvalidRequest as exc:  # the path names a missing resource, not a bad field
        raise NotFound(exc.message) from exc
    try:
        params, mode = params_and_mode(template, body)
        return submit({"template": ref, "params": params, "mode": mode})
    except ParamsInvalid as exc:  # the body is the params: point at its fields, not at "params.<name>"
        problems = (exc.errors or {}).get("json", {}).get("params")
        if not isinstance(problems, dict):
            raise
        raise ParamsInvalid(exc.message.removeprefix("params."), {"json": problems}) from exc
