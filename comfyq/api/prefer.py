"""``Prefer: wait=N`` (RFC 7240) on submissions: parse it, and ask the ASGI layer to hold the answer.

A submission whose ``Prefer`` header asks to ``wait`` N seconds is answered
200 with the final job (or batch) if it ends within N seconds (at most
``COMFYQ_MAX_PREFER_WAIT``), else 202 as without it; both say
``Preference-Applied: wait=N`` with the N applied. The view submits as usual
and marks its 202 with ``X-Comfyq-Hold`` (``wait``, the jobs, the path that
reads them back); ``comfyq.asgi`` keeps the answer while it waits on the hub.
Per RFC 7240 a preference the server does not understand, or a malformed
one, is ignored, never refused. A plain WSGI server holds nothing, so there
the header is ignored and the answer is 202 as always.
"""
from __future__ import annotations

import json
import re
from typing import Iterable

from flask import current_app, request

from ..events.sse import HOLD_HEADER, HOLDER_HEADER
from ..jobs.machine import TERMINAL

TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
DIGITS = re.compile(r"[0-9]+")
APPLIED = "Preference-Applied"
PREFER_DOC = {"in": "header", "name": "Prefer", "required": False, "schema": {"type": "string"},
              "example": "wait=10",
              "description": "RFC 7240. `wait=N`: answer 200 with the final state if it ends within N seconds "
                             "(at most the server's COMFYQ_MAX_PREFER_WAIT, 60 by default), else 202 after "
                             "N seconds; it goes on running either way. Other preferences, and malformed ones, "
                             "are ignored."}
APPLIED_DOC = {APPLIED: {"schema": {"type": "string"},
                         "description": "`wait=N`: the server waited up to N seconds (the N it applied)"}}


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split ``text`` at ``separator`` wherever it is not inside a quoted-string."""
    parts, start, quoted, escaped = [], 0, False, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def unquote(word: str) -> str | None:
    """Return a token or quoted-string's value; None when it is neither."""
    if len(word) >= 2 and word[0] == word[-1] == '"':
        return re.sub(r"\\(.)", r"\1", word[1:-1])
    return word if TOKEN.fullmatch(word) else None


def preferences(headers: Iterable[str]) -> dict[str, str]:
    """Return the preferences of ``Prefer`` headers by lower-case name (the first of a repeated one; no params)."""
    found: dict[str, str] = {}
    for header in headers:
        for element in split_outside_quotes(header, ","):
            name, sep, value = split_outside_quotes(element, ";")[0].partition("=")
            name = name.strip().lower()
            word = unquote(value.strip()) if sep else ""
            if TOKEN.fullmatch(name) and word is not None and name not in found:
                found[name] = word
    return found


def wait_seconds(headers: Iterable[str], most: int) -> int | None:
    """Return the seconds a ``wait`` preference asks for, at most ``most``; None when absent, 0 or malformed."""
    asked = preferences(headers).get("wait")
    if asked is None or not DIGITS.fullmatch(asked) or most <= 0:
        return None
    digits = asked.lstrip("0") or "0"
    seconds = most if len(digits) > 12 else min(int(digits), most)  # a huge N is the most, not a huge int
    return seconds or None


def submitted_answer(job_ids: list[str], statuses: Iterable[str], then: str) -> tuple[int, dict[str, str]]:
    """Return a submission's status and headers: 202, held while its jobs run if the request asked to wait."""
    if request.headers.get(HOLDER_HEADER) != "1":  # a plain WSGI server: nothing can hold the answer
        return 202, {}
    seconds = wait_seconds(request.headers.getlist("Prefer"), current_app.config["MAX_PREFER_WAIT"])
    if seconds is None:
        return 202, {}
    if all(status in TERMINAL for status in statuses):  # ended already: the answer is final as it is
        return 200, {APPLIED: f"wait={seconds}"}
    hold = {"wait": seconds, "jobs": job_ids, "then": then}
    return 202, {HOLD_HEADER: json.dumps(hold, separators=(",", ":"))}
