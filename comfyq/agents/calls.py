"""Tool calls, run through the REST client with the caller's key: a template as a job, a job's status, a cancel."""
from __future__ import annotations

import base64
import io
import json
import logging
import tempfile
from typing import Any

import mcp_types as types
import requests

from ..client import Client, ComfyqAPIError
from .progress import ProgressTeller, Report
from .tools import CANCEL_JOB, JOB_STATUS, is_expert

logger = logging.getLogger(__name__)
PREVIEW_PX = 256


def refusal(message: str) -> types.CallToolResult:
    """Return a tool error carrying ``message`` (the API's, where it answered one)."""
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def call_tool(client: Client, name: str, arguments: dict[str, Any], report: Report) -> types.CallToolResult:
    """Run one tool call to its end; every API error becomes a tool error with the API's message."""
    try:
        if name == JOB_STATUS:
            return _json_result(client.job(_job_id(arguments)))
        if name == CANCEL_JOB:
            return _json_result(client.cancel(_job_id(arguments)))
        return run_template(client, name, arguments, report)
    except ComfyqAPIError as exc:
        return refusal(str(exc))
    except requests.RequestException as exc:  # Unreachable says where the API was looked for
        return refusal(str(exc))
    except ValueError as exc:
        return refusal(str(exc))


def run_template(client: Client, name: str, arguments: dict[str, Any], report: Report) -> types.CallToolResult:
    """Submit a template as a job, report its events as progress until it ends, return its outputs."""
    mode = "expert" if is_expert(client.account()) else "novice"
    job = client.submit(name, arguments, mode=mode)
    teller = ProgressTeller(report)
    teller.tell_job(job)
    for event in client.events(job["id"]):
        teller.tell(event)
    return finished(client, client.job(job["id"]))


def finished(client: Client, job: dict[str, Any]) -> types.CallToolResult:
    """Return an ended job as a tool result: a preview image and links to every output, or its error."""
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        return refusal(f"job {job['id']} {job['status']}: {error.get('message') or 'no message'}")
    outputs = job.get("outputs") or []
    content: list[types.ContentBlock] = [types.TextContent(text=json.dumps(
        {"job_id": job["id"], "status": job["status"], "cost": job.get("cost"),
         "outputs": [o["url"] for o in outputs]}))]
    image = next((o for o in outputs if str(o.get("content_type", "")).startswith("image/")), None)
    if image is not None:
        preview = _preview(client, image)
        if preview is not None:
            content.append(types.ImageContent(data=preview, mime_type="image/png"))
    content += [types.ResourceLink(uri=o["url"], name=o["name"], mime_type=o.get("content_type"),
                                   size=o.get("size")) for o in outputs]
    return types.CallToolResult(content=content, structured_content={"job": job})


def _preview(client: Client, output: dict[str, Any]) -> str | None:
    """Return a PNG of one output at most PREVIEW_PX on a side, base64; None if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    with tempfile.TemporaryDirectory(prefix="comfyq-mcp-") as folder:
        try:
            with Image.open(client.download(output, folder)) as picture:
                picture.thumbnail((PREVIEW_PX, PREVIEW_PX))
                buffer = io.BytesIO()
                picture.convert("RGBA" if "A" in picture.getbands() else "RGB").save(buffer, "PNG")
        except (ComfyqAPIError, requests.RequestException, UnidentifiedImageError, OSError) as exc:
            logger.warning("no preview of %s: %s", output.get("url"), exc)
            return None
    return base64.b64encode(buffer.getvalue()).decode()


def _json_result(job: dict[str, Any]) -> types.CallToolResult:
    """Return a job as a tool result (text and structured)."""
    return types.CallToolResult(content=[types.TextContent(text=json.dumps(job))], structured_content={"job": job})


def _job_id(arguments: dict[str, Any]) -> str:
    """Return the ``job_id`` argument, or raise ValueError saying what is missing."""
    job_id = arguments.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise ValueError("job_id: give the id of a job of yours (a string)")
    return job_id
