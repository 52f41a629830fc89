"""Python client of the comfyq API (used by the ``comfyq`` commands and the end-to-end tests).

It imports nothing of the server: ``from comfyq.client import Client``.
"""
from .errors import (ERRORS, BadRequest, ComfyqAPIError, Conflict, Forbidden, Gone, Invalid, JobFailed, NotFound,
                     PaymentRequired, RateLimited, TooLarge, Unauthorized, Unavailable, Unreachable, error_for)
from .rest import TERMINAL, Client
from .sse import Event, parse

__all__ = ["Client", "Event", "ERRORS", "TERMINAL", "BadRequest", "ComfyqAPIError", "Conflict", "Forbidden", "Gone",
           "Invalid", "JobFailed", "NotFound", "PaymentRequired", "RateLimited", "TooLarge", "Unauthorized",
           "Unavailable", "Unreachable", "error_for", "parse"]
