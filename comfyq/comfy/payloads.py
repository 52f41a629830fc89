"""Turn ComfyUI's JSON answers (queue, history, rejections, events) into results or errors."""
from __future__ import annotations

from typing import Any

from .errors import ComfyProtocolError, ExecutionFailed, ExecutionInterrupted, PromptRejected


def expect_dict(body: Any, url: str, what: str) -> dict[str, Any]:
    """Return body if it is a JSON object, else raise ComfyProtocolError."""
    if not isinstance(body, dict):
        raise ComfyProtocolError(f"{what}: expected a JSON object, got {type(body).__name__}",
                                 url, None, repr(body)[:500])
    return body


def queue_listing(raw: dict[str, Any], url: str = "") -> dict[str, Any]:
    """Return running and pending prompt ids (pending in run order) plus the raw lists."""
    running = raw.get("queue_running")
    pending = raw.get("queue_pending")
    if not isinstance(running, list) or not isinstance(pending, list):
        raise ComfyProtocolError("queue: queue_running/queue_pending missing", url,
                                 None, repr(raw)[:500])
    try:
        # ComfyUI lists pending items in heap order; the number is the priority.
        in_order = sorted(pending, key=lambda item: float(item[0]))
        return {
            "running": [str(item[1]) for item in running],
            "pending": [str(item[1]) for item in in_order],
            "raw": raw,
        }
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise ComfyProtocolError(f"queue: malformed item: {exc}", url,
                                 None, repr(raw)[:500]) from exc


def rejection(body: Any, status_code: int, url: str, prompt_id: str) -> PromptRejected:
    """Build PromptRejected from a /prompt answer carrying an error or node_errors."""
    body = body if isinstance(body, dict) else {}
    error = body.get("error")
    if isinstance(error, str):  # older servers answer {"error": "no prompt"}
        error = {"type": error.replace(" ", "_"), "message": error}
    node_errors = body.get("node_errors")
    if not error:
        error = {"type": "prompt_outputs_failed_validation",
                 "message": "some output branches failed validation"}
    message = str(error.get("message") or error.get("type") or "prompt rejected")
    details = error.get("details")
    if details:
        message = f"{message}: {details}"
    return PromptRejected(message, url, dict(error),
                          node_errors if isinstance(node_errors, dict) else {},
                          status_code, prompt_id)


def failure(prompt_id: str, data: dict[str, Any], url: str | None = None) -> ExecutionFailed:
    """Build ExecutionFailed from the data of an execution_error message."""
    # ComfyUI appends "\n" plus memory tips to the node's exception text.
    message = str(data.get("exception_message") or "").strip() or "node raised"
    return ExecutionFailed(
        message, url, prompt_id,
        _str_or_none(data.get("node_id")), _str_or_none(data.get("node_type")),
        _str_or_none(data.get("exception_type")), data.get("traceback"))


def interruption(prompt_id: str, data: dict[str, Any],
                 url: str | None = None) -> ExecutionInterrupted:
    """Build ExecutionInterrupted from the data of an execution_interrupted message."""
    return ExecutionInterrupted("interrupted", url, prompt_id,
                                _str_or_none(data.get("node_id")),
                                _str_or_none(data.get("node_type")))


def outcome(prompt_id: str, entry: dict[str, Any], url: str | None = None) -> dict[str, Any]:
    """Return a finished prompt's history entry, or raise how it ended if it did not succeed."""
    status = entry.get("status")
    if not isinstance(status, dict) or status.get("status_str") != "error":
        return entry
    messages = status.get("messages") or []
    for message in messages:
        if not (isinstance(message, (list, tuple)) and len(message) == 2):
            continue
        kind, data = message
        if kind == "execution_interrupted" and isinstance(data, dict):
            raise interruption(prompt_id, data, url)
        if kind == "execution_error" and isinstance(data, dict):
            raise failure(prompt_id, data, url)
    raise ExecutionFailed("prompt ended in error without an execution_error message",
                          url, prompt_id)


def _str_or_none(value: Any) -> str | None:
    """Return value as text, keeping None (node ids may arrive as numbers)."""
    return None if value is None else str(value)
