"""REST API under /v1: thin views over the domain modules."""
from __future__ import annotations

from pathlib import Path

from flask import Flask, send_from_directory

from .document import make_api
from .errors import ComfyqApi
from .template_docs import document_runs


def init_api(flask_app: Flask) -> ComfyqApi:
    """Register the blueprints, the OpenAPI document and the interactive docs."""
    from . import (account, admin, batches, editor_sessions, health, instances, jobs, metrics, streams, template_runs,
                   templates, uploads, webhooks)
    from .auth import init_auth
    from ..accounts.ratelimit import init_ratelimit

    init_auth(flask_app)
    init_ratelimit(flask_app)
    _serve_swagger_ui(flask_app)
    api = make_api(flask_app)
    api.register_blueprint(jobs.bp)
    api.register_blueprint(jobs.estimate_bp)
    api.register_blueprint(streams.bp)
    api.register_blueprint(batches.bp)
    api.register_blueprint(uploads.bp)
    api.register_blueprint(templates.bp)
    api.register_blueprint(template_runs.bp)
    document_runs(api.spec, flask_app.extensions["templates"].latest())
    api.register_blueprint(instances.bp)
    api.register_blueprint(health.bp)
    api.register_blueprint(account.bp)
    api.register_blueprint(webhooks.bp)
    api.register_blueprint(admin.bp)
    api.register_blueprint(editor_sessions.bp)
    flask_app.register_blueprint(metrics.bp)  # Prometheus text, outside /v1 and the OpenAPI document
    return api


def _serve_swagger_ui(flask_app: Flask) -> None:
    # Serve Swagger UI from the swagger-ui-bundle wheel so /docs works offline.
    import swagger_ui_bundle

    root = Path(swagger_ui_bundle.swagger_ui_path)
    flask_app.config["OPENAPI_SWAGGER_UI_URL"] = "/swagger-ui/"
    flask_app.add_url_rule(
        "/swagger-ui/<path:filename>", "swagger_ui_static",
        lambda filename: send_from_directory(root, filename))
