"""The one error shape ``{code, status, message, errors}`` for every failure."""
from __future__ import annotations

import logging
from typing import Any

from flask import request
from flask_smorest import Api
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import (HTTPException, InternalServerError, MethodNotAllowed, ServiceUnavailable,
                                 default_exceptions)

from ..errors import ComfyqError
from ..db.extensions import db

logger = logging.getLogger(__name__)


def _first_problem(errors: Any, path: tuple[str, ...] = ()) -> str | None:
    """Return ``where: what`` for the first leaf of a marshmallow error tree."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            found = _first_problem(value, path + (str(key),))
            if found:
                return found
    elif isinstance(errors, list) and errors:
        if all(isinstance(item, str) for item in errors):
            where = ".".join(p for p in path if p not in ("json", "query", "form", "files", "_schema"))
            return f"{where}: {errors[0]}" if where else errors[0]
        return _first_problem(errors[0], path)
    return None


class ComfyqApi(Api):
    """flask-smorest Api whose errors always carry a message and an errors object."""

    # No catch-all "default" response: each operation lists the statuses it answers (comfyq.api.openapi).
    DEFAULT_ERROR_RESPONSE_NAME = None

    def handle_http_exception(self, error: HTTPException) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Render any HTTP error in the one error shape."""
        data = getattr(error, "data", None) or {}
        errors = data.get("errors", data.get("messages", {}))
        if errors == {"json": ["Invalid JSON body."]}:
            data = dict(data, message="the body is not valid JSON; send a JSON object with "
                                      "Content-Type: application/json")
        if errors == {"json": {"_schema": ["Invalid input type."]}}:  # marshmallow's word for "not an object"
            data = dict(data, message="the body must be a JSON object of named fields ({...}), "
                                      "not an array, a string, a number or null")
        if isinstance(error, MethodNotAllowed) and error.valid_methods and not data.get("message"):
            allowed = ", ".join(sorted(set(error.valid_methods) - {"HEAD", "OPTIONS"}))
            data = dict(data, message=f"{request.method} is not allowed on {request.path}; use {allowed}")
        message = data.get("message") or _first_problem(errors) or error.description
        payload = {"code": error.code, "status": error.name, "message": message, "errors": errors}
        # werkzeug's own headers of the error (Allow of a 405, Retry-After, WWW-Authenticate), ours on top.
        headers = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
        return payload, error.code or 500, {**headers, **(data.get("headers") or {})}

    def _register_error_handlers(self) -> None:
        super()._register_error_handlers()
        self._app.register_error_handler(ComfyqError, self._handle_domain)
        self._app.register_error_handler(SQLAlchemyError, self._handle_database)
        self._app.register_error_handler(Exception, self._handle_unexpected)

    def _handle_domain(self, error: ComfyqError) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Render a domain error with its own status, message and errors."""
        exc = default_exceptions.get(error.status, HTTPException)()  # werkzeug has no class for 402
        exc.code = error.status
        exc.data = {"message": error.message, "errors": error.errors,  # type: ignore[attr-defined]
                    "headers": error.headers}
        return self.handle_http_exception(exc)

    def _handle_database(self, error: SQLAlchemyError) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Answer 503 when the database fails; nothing half-written is left (the session rolls back)."""
        logger.error("database error: %s", error)
        db.session.rollback()
        return self.handle_http_exception(ServiceUnavailable(
            "the database is unavailable or busy; nothing was changed, try again"))

    def _handle_unexpected(self, error: Exception) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Log anything unforeseen and answer 500 in the one error shape."""
        if isinstance(error, HTTPException):
            return self.handle_http_exception(error)
        logger.exception("unhandled error")
        return self.handle_http_exception(InternalServerError("comfyq hit an internal error; it is logged"))

