"""Template endpoints: what can be run, with which parameters."""
from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import Schema, fields

from ..errors import InvalidRequest, NotFound
from .parser import Blueprint

bp = Blueprint("templates", __name__, url_prefix="/v1/templates", description="Workflow templates")


class TemplateSchema(Schema):
    """A template: its parameters, cost and time-limit formulas, guards, and the versions that exist."""

    name = fields.String()
    version = fields.Integer()
    ref = fields.String(metadata={"description": "name@version"})
    description = fields.String()
    params = fields.Dict(keys=fields.String(), values=fields.Dict(), metadata={
        "description": "name → type, mode (novice or expert), description, required, default, min, max, "
                       "choices, max_length, multiple_of, random_when_unset, measured_from"})
    cost = fields.String(metadata={"description": "the cost formula, in credits"})
    guards = fields.List(fields.String(), metadata={"description": "what a request must meet to be accepted"})
    time_limit = fields.String(metadata={"description": "the soft time limit formula, in seconds"})
    requires = fields.List(fields.String(), metadata={"description": "capabilities an instance must offer"})
    node_labels = fields.Dict(keys=fields.String(), values=fields.String(),
                              metadata={"description": "node id → the label progress shows"})
    versions = fields.List(fields.Integer())


class TemplateListSchema(Schema):
    """The newest version of every template."""

    templates = fields.List(fields.Nested(TemplateSchema))


@bp.route("")
@bp.response(200, TemplateListSchema)
def templates() -> dict[str, Any]:
    """List the newest version of every template, with the versions that exist."""
    store = current_app.extensions["templates"]
    versions: dict[str, list[int]] = {}
    for template in store.all():
        versions.setdefault(template.name, []).append(template.version)
    return {"templates": [dict(t.describe(), versions=versions[t.name]) for t in store.latest()]}


@bp.route("/<ref>")
@bp.response(200, TemplateSchema)
def template(ref: str) -> dict[str, Any]:
    """Describe one template (``name`` for the newest, ``name@version`` for one version)."""
    try:
        found = current_app.extensions["templates"].get(ref)
    except InvalidRequest as exc:  # a missing resource here, not a bad field
        raise NotFound(exc.message) from exc
    return dict(found.describe(), versions=[t.version for t in current_app.extensions["templates"].all()
                                            if t.name == found.name])
