"""Errors raised by the ComfyUI client.

::

    ComfyError
     ├── ComfyUnreachable        connection refused/reset, DNS, websocket cannot connect
     │    └── ComfyConnectFailed  no connection opened: the request was never sent
     ├── ComfyTimeout            a call or follow() ran past its timeout
     ├── ComfyProtocolError      unexpected status or body shape (e.g. plain-text 500)
     │    └── OutputMissing      /view answered 404
     ├── PromptRejected          validation failed: .error, .node_errors, .status_code
     ├── PromptLost              the prompt is in neither queue nor history
     ├── ExecutionFailed         .prompt_id, .node_id, .node_type, .message, .exception_type, .traceback
     └── ExecutionInterrupted    .prompt_id, .node_id, .node_type

Every error takes ``(message, url, *context)`` positionally and hands all of
it to ``Exception.__init__``, so ``cls(*exc.args)`` rebuilds it: that is how
pickle (and so Celery) carries an exception between processes.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "ComfyError",
    "ComfyUnreachable",
    "ComfyConnectFailed",
    "ComfyTimeout",
    "ComfyProtocolError",
    "OutputMissing",
    "PromptRejected",
    "PromptLost",
    "ExecutionFailed",
    "ExecutionInterrupted",
]


class ComfyError(Exception):
    """Base of every error raised while talking to a ComfyUI server."""

    def __init__(self, message: str = "", url: str | None = None, *context: Any) -> None:
        super().__init__(message, url, *context)
        self.message = message
        self.url = url

    def __str__(self) -> str:
        return f"{self.message} [{self.url}]" if self.url else self.message


class ComfyUnreachable(ComfyError):
    """The server could not be reached, or dropped the connection."""


class ComfyConnectFailed(ComfyUnreachable):
    """No connection could be opened, so the server never saw the request."""


class ComfyTimeout(ComfyError):
    """A call or a follow() ran past its timeout."""

    def __init__(self, message: str = "", url: str | None = None,
                 timeout: float | None = None) -> None:
        super().__init__(message, url, timeout)
        self.timeout = timeout


class ComfyProtocolError(ComfyError):
    """The server answered with an unexpected status or body."""

    def __init__(self, message: str = "", url: str | None = None,
                 status_code: int | None = None, body: str | None = None) -> None:
        super().__init__(message, url, status_code, body)
        self.status_code = status_code
        self.body = body


class OutputMissing(ComfyProtocolError):
    """The file asked of /view does not exist."""

    def __init__(self, message: str = "", url: str | None = None,
                 status_code: int | None = 404, body: str | None = None) -> None:
        super().__init__(message, url, status_code, body)


class PromptRejected(ComfyError):
    """The server refused the prompt (validation failed)."""

    def __init__(self, message: str = "", url: str | None = None,
                 error: dict[str, Any] | None = None,
                 node_errors: dict[str, Any] | None = None,
                 status_code: int | None = None,
                 prompt_id: str | None = None) -> None:
        super().__init__(message, url, error, node_errors, status_code, prompt_id)
        self.error = error or {}
        self.node_errors = node_errors or {}
        self.status_code = status_code
        self.prompt_id = prompt_id

    def __str__(self) -> str:
        kind = self.error.get("type", "rejected")
        nodes = ", ".join(sorted(self.node_errors))
        text = f"prompt {self.prompt_id} rejected ({kind}): {self.message}"
        return f"{text}; failing nodes: {nodes}" if nodes else text


class PromptLost(ComfyError):
    """The prompt is in neither the queue nor the history."""

    def __init__(self, message: str = "", url: str | None = None,
                 prompt_id: str | None = None) -> None:
        super().__init__(message, url, prompt_id)
        self.prompt_id = prompt_id


class ExecutionFailed(ComfyError):
    """A node raised while the prompt ran."""

    def __init__(self, message: str = "", url: str | None = None,
                 prompt_id: str | None = None, node_id: str | None = None,
                 node_type: str | None = None, exception_type: str | None = None,
                 traceback: list[str] | str | None = None) -> None:
        super().__init__(message, url, prompt_id, node_id, node_type,
                         exception_type, traceback)
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.traceback = traceback

    def __str__(self) -> str:
        kind = f"{self.exception_type}: " if self.exception_type else ""
        return (f"prompt {self.prompt_id} failed at node {self.node_id} "
                f"({self.node_type}): {kind}{self.message}")


class ExecutionInterrupted(ComfyError):
    """The prompt was interrupted before it finished."""

    def __init__(self, message: str = "", url: str | None = None,
                 prompt_id: str | None = None, node_id: str | None = None,
                 node_type: str | None = None) -> None:
        super().__init__(message, url, prompt_id, node_id, node_type)
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type

    def __str__(self) -> str:
        return (f"prompt {self.prompt_id} interrupted before node {self.node_id} "
                f"({self.node_type})")
