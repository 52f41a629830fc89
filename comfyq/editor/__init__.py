"""ComfyUI's own web editor under /comfy/, acting as one student: its files, a ComfyUI-compatible API, a websocket.

A teaching backend mints a link (``POST /v1/editor-sessions``); opening it sets
a cookie bound to the student (``auth``). The page and its files
come from the ``comfyui-frontend-package`` wheel (``static``). The editor calls
``<base>/api/...``: every API route answers under both ``/comfy/`` and
``/comfy/api/``, in ComfyUI's shapes, over comfyq's own jobs, catalogue,
uploads and outputs (``prompt``, ``queue``, ``catalogue``, ``files``,
``userdata``); ``GET /comfy/ws`` is served by the ASGI layer (``ws``), which
speaks ComfyUI's messages from the student's job events (``translate``).
"""
from __future__ import annotations

from flask import Flask


def init_editor(flask_app: Flask) -> None:
    """Register the page, its files and the ComfyUI-compatible API (twice: under /comfy and /comfy/api)."""
    from . import catalogue, files, prompt, queue, static, userdata

    flask_app.register_blueprint(static.bp, url_prefix="/comfy")
    for module in (catalogue, files, prompt, queue, userdata):
        flask_app.register_blueprint(module.bp, url_prefix="/comfy")
        flask_app.register_blueprint(module.bp, url_prefix="/comfy/api", name=f"{module.bp.name}_api")
