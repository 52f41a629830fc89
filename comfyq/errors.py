"""Domain errors that views turn into 4xx/503 answers.

::

    ComfyqError                 .status is the HTTP status the API answers with
     ├── InvalidRequest   422   the request cannot be run as given (.errors says where)
     │    └── WorkflowInvalid   (comfyq.workflows.node_errors) the graph would not run, or names unsafe files
     │         └── SavedGraphInvalid   (comfyq.workflows.saved_format) a saved graph cannot be converted
     ├── Unauthorized     401   no API key, or one that is unknown, revoked or disabled
     ├── PaymentRequired  402   the balance does not cover the cost (.errors has both)
     ├── Forbidden        403   the caller's role may not do this
     ├── NotFound         404   no such job, output or upload (or not the caller's)
     ├── Conflict         409   the job's state forbids the operation
     ├── TooLarge         413   an upload is over the size cap
     ├── TooManyRequests  429   a per-user limit is reached (waiting jobs, submission rate)
     └── Unavailable      503   Redis or the database cannot be reached; nothing was written
          └── StoreUnavailable    the S3 store cannot be reached or refused a request
"""
from __future__ import annotations

from typing import Any


class ComfyqError(Exception):
    """Base of comfyq's domain errors."""

    status = 400

    def __init__(self, message: str, errors: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, errors)
        self.message = message
        self.errors = errors or {}
        self.headers = headers or {}


class InvalidRequest(ComfyqError):
    """The request cannot be run as given."""

    status = 422


class Unauthorized(ComfyqError):
    """No usable API key came with the request."""

    status = 401


class PaymentRequired(ComfyqError):
    """The user's balance does not cover what they asked for."""

    status = 402


class Forbidden(ComfyqError):
    """The caller's role may not do this."""

    status = 403


class NotFound(ComfyqError):
    """No such job or output."""

    status = 404


class Conflict(ComfyqError):
    """The job's state forbids the operation."""

    status = 409


class TooLarge(ComfyqError):
    """An upload is over the size cap."""

    status = 413


class TooManyRequests(ComfyqError):
    """A per-user limit is reached; retrying later may succeed."""

    status = 429


class Unavailable(ComfyqError):
    """A backing service is down; nothing was written."""

    status = 503


class StoreUnavailable(Unavailable):
    """The S3 store cannot be reached or refused a request; a worker retries, the API answers 503."""
