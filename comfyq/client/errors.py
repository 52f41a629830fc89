"""Exceptions of the Python client: one per status of the API's error shape, and a failed job."""
from __future__ import annotations

from typing import Any

import requests


class ComfyqAPIError(Exception):
    """The API answered with its error shape; subclasses name the status.

    ::

        ComfyqAPIError
         ├── BadRequest 400, Invalid 422     fix the request as ``message`` says
         ├── Unauthorized 401, Forbidden 403  the key is unknown, or its role may not
         ├── PaymentRequired 402              .errors has balance and cost
         ├── NotFound 404, Gone 410           no such thing for you, or its output expired
         ├── Conflict 409                     the job's state forbids it
         ├── TooLarge 413                     an upload over the cap
         ├── RateLimited 429                  .retry_after seconds, when the API says
         └── Unavailable 503                  try again later

    ``Unreachable`` (a ``requests.ConnectionError``) means no answer came at all.
    """

    def __init__(self, status: int, message: str, errors: Any = None, retry_after: float | None = None) -> None:
        super().__init__(status, message, errors)
        self.status, self.message, self.errors, self.retry_after = status, message, errors, retry_after

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


class BadRequest(ComfyqAPIError):
    """400: the request could not be read."""


class Unauthorized(ComfyqAPIError):
    """401: no usable API key."""


class PaymentRequired(ComfyqAPIError):
    """402: the balance does not cover the cost."""


class Forbidden(ComfyqAPIError):
    """403: the key's role may not do this."""


class NotFound(ComfyqAPIError):
    """404: no such job, batch, output or upload of yours."""


class Conflict(ComfyqAPIError):
    """409: the job's state forbids the operation."""


class Gone(ComfyqAPIError):
    """410: the output is no longer stored."""


class TooLarge(ComfyqAPIError):
    """413: the upload or body is too large."""


class Invalid(ComfyqAPIError):
    """422: the request cannot be run as given."""


class RateLimited(ComfyqAPIError):
    """429: a per-user limit is reached."""


class Unavailable(ComfyqAPIError):
    """503: a backing service is down; nothing was written."""


class Unreachable(requests.ConnectionError):
    """The API could not be reached, or did not answer in time; the message says where it was looked for."""

    def __init__(self, base_url: str, cause: requests.RequestException) -> None:
        what = "did not answer in time" if isinstance(cause, requests.Timeout) else "is unreachable"
        super().__init__(f"the comfyq API at {base_url} {what} ({type(cause).__name__}); start it "
                         "(python3 -m comfyq up) or point the client at it with --api-url or COMFYQ_API_URL")


class JobFailed(Exception):
    """A job ``run`` waited for ended without succeeding; ``.job`` is how it ended."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(f"job {job['id']} {job['status']}: {(job.get('error') or {}).get('message')}")
        self.job = job


ERRORS: dict[int, type[ComfyqAPIError]] = {400: BadRequest, 401: Unauthorized, 402: PaymentRequired, 403: Forbidden,
                                           404: NotFound, 409: Conflict, 410: Gone, 413: TooLarge, 422: Invalid,
                                           429: RateLimited, 503: Unavailable}


def error_for(response: requests.Response) -> ComfyqAPIError:
    """Return the typed exception of an error answer."""
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text[:200]}
    if not isinstance(body, dict):  # not comfyq's error shape (a proxy's answer, say)
        body = {"message": str(body)[:200]}
    retry = response.headers.get("Retry-After")
    kind = ERRORS.get(response.status_code, ComfyqAPIError)
    return kind(response.status_code, body.get("message", ""), body.get("errors"),
                float(retry) if retry and retry.isdigit() else None)
