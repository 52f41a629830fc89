"""Errors of the template store: broken templates on disk, and bad template requests.

::

    Exception
     └── TemplateError              a template on disk is broken (.path, .reason); found at start-up
    comfyq.errors.InvalidRequest    422; .errors points at the field
     ├── UnknownTemplate            no such template name or version        errors.json.template
     ├── ParamsInvalid              unknown, mistyped, out-of-bounds params  errors.json.params.<name>
     └── GuardFailed                the params break a guard of the template errors.json.params

The request errors keep ``ComfyqError``'s ``(message, errors)`` arguments, so
they pickle; build them with their ``for_*`` class methods.
"""
from __future__ import annotations

from ..errors import InvalidRequest


class TemplateError(Exception):
    """A template on disk is broken: which file, and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class UnknownTemplate(InvalidRequest):
    """No template has that name, or not that version."""

    @classmethod
    def for_ref(cls, ref: object, reason: str) -> "UnknownTemplate":
        """Build the error for a template reference and what is wrong with it."""
        return cls(f"template {ref!r}: {reason}", {"json": {"template": [reason]}})


class ParamsInvalid(InvalidRequest):
    """Some params are unknown, mistyped, out of bounds or not allowed in this mode."""

    @classmethod
    def for_problems(cls, problems: dict[str, list[str]]) -> "ParamsInvalid":
        """Build the error from each param's problems; the message names the first."""
        name, messages = next(iter(problems.items()))
        return cls(f"params.{name}: {messages[0]}", {"json": {"params": problems}})

    @classmethod
    def for_formula(cls, what: str, reason: str) -> "ParamsInvalid":
        """Build the error for a formula that cannot be computed from these params."""
        message = f"the template's {what} cannot be computed from these params: {reason}"
        return cls(f"params: {message}", {"json": {"params": [message]}})


class GuardFailed(InvalidRequest):
    """The params break one or more of the template's guards."""

    @classmethod
    def for_messages(cls, messages: list[str]) -> "GuardFailed":
        """Build the error from the failed guards' messages; the message is the first."""
        return cls(messages[0], {"json": {"params": list(messages)}})
