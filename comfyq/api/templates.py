"""Template endpoints: what can be run, with which parameters."""
from __future__ import annotations

from typing import Any

from flask import current_app

from ..errors import InvalidRequest, NotFound
from .parser import Blueprint

bp = Blueprint("templates", __name__, url_prefix="/v1/templates", description="Workflow templates")


@bp.route("")
@bp.response(200)
def templates() -> dict[str, Any]:
    """List the newest version of every template, with the versions that exist."""
    store = current_app.extensions["templates"]
    versions: dict[str, list[int]] = {}
    for template in store.all():
        versions.setdefault(template.name, []).append(template.version)
    return {"templates": [dict(t.describe(), versions=versions[t.name]) for t in store.latest()]}


@bp.route("/<ref>")
@bp.response(200)
def template(ref: str) -> dict[str, Any]:
    """Describe one template (``name`` for the newest, ``name@version`` for one version)."""
    try:
        found = current_app.extensions["templates"].get(ref)
    except InvalidRequest as exc:  # a missing resource here, not a bad field
        raise NotFound(exc.message) from exc
    return dict(found.describe(), versions=[t.version for t in current_app.extensions["templates"].all()
                                            if t.name == found.name])
