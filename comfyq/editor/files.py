"""Files through the editor: ``/view`` of the student's outputs and uploads, ``/upload/image`` and ``/upload/mask``.

Uploads become the student's content-addressed comfyq uploads, answered as
ComfyUI does (``{name, subfolder, type}``), the name being the stored one a
LoadImage node may then name. An output is viewed by its name and its job's id
as subfolder (see ``history.image_ref``).
"""
from __future__ import annotations

import io
import json
from typing import Any

from flask import Blueprint, Response, current_app, redirect, request, send_file
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select

from ..db.extensions import db
from ..db.models import Output, Upload
from ..errors import ComfyqError, InvalidRequest, NotFound
from ..submission.uploads import create_upload
from .auth import current_student, require_student
from .history import own_job
from .shapes import comfy_error

bp = Blueprint("comfy_files", __name__)
bp.before_request(require_student)


def _stored(store: Any, key: str, name: str, content_type: str, etag: str) -> Response:
    """Answer a stored file: from this machine's directory, or a redirect to the store's presigned URL."""
    direct = store.url(key, name, content_type)
    if direct is not None:
        return redirect(direct, 302)
    path = store.local_path(key)
    if path is None or not path.is_file():
        raise NotFound(f"{name!r} is no longer stored")
    return send_file(path, mimetype=content_type, etag=etag, conditional=True, max_age=3600)


@bp.route("/view")
def view() -> Response:
    """Serve one of the student's outputs (``type=output``, subfolder = prompt id) or uploads (``type=input``)."""
    name, subfolder, kind = (request.args.get(key, default) for key, default in
                             (("filename", ""), ("subfolder", ""), ("type", "output")))
    if not name or ".." in name or "/" in name or kind not in ("output", "input", "temp"):
        return comfy_error("invalid_request", "filename must be a plain file name and type output or input")
    stores, student = current_app.extensions["stores"], current_student()
    if kind == "output":
        job = own_job(subfolder, student)
        output = db.session.scalar(select(Output).where(Output.job_id == job.id, Output.name == name))
        if output is None or output.expired_at is not None:
            raise NotFound(f"no output {name!r} of prompt {job.id}")
        return _stored(stores.outputs, output.path, output.name, output.content_type, output.sha256)
    upload = db.session.scalar(select(Upload).where(Upload.user_id == student.id, Upload.name == name))
    if upload is None or kind == "temp":
        raise NotFound(f"no {kind} file {name!r} of yours")
    return _stored(stores.inputs, upload.name, upload.name, upload.content_type, upload.sha256)


def _file_bytes() -> bytes:
    """Return the bytes of the multipart field ``image``, or raise InvalidRequest."""
    sent = request.files.get("image")
    if sent is None:
        raise InvalidRequest("send the image as the multipart field 'image'")
    return sent.read()


def _masked(mask_data: bytes, original_ref: str) -> bytes:
    """Return the student's original image (``original_ref``) with the mask's alpha, as ComfyUI's mask upload."""
    try:
        ref = json.loads(original_ref)
        name = ref["filename"] if isinstance(ref, dict) else None
    except (ValueError, KeyError, RecursionError):
        name = None
    if not isinstance(name, str):
        raise InvalidRequest("original_ref must be JSON naming the masked image's filename")
    upload = db.session.scalar(select(Upload).where(Upload.user_id == current_student().id, Upload.name == name))
    if upload is None:
        raise NotFound(f"no image {name!r} among your uploads to mask")
    try:
        original = Image.open(io.BytesIO(current_app.extensions["stores"].inputs.read(upload.name))).convert("RGBA")
        mask = Image.open(io.BytesIO(mask_data)).convert("RGBA").resize(original.size)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InvalidRequest("the mask is not a readable PNG, JPEG or WebP image") from None
    original.putalpha(mask.getchannel("A"))
    out = io.BytesIO()
    original.save(out, "PNG")
    return out.getvalue()


def _upload(masking: bool) -> Response:
    """Store an uploaded image (or a mask applied to its image) as the student's upload; answer ComfyUI's shape."""
    try:
        data = _file_bytes()
        if masking:
            data = _masked(data, request.form.get("original_ref", ""))
        upload, _ = create_upload(current_student(), data, "image")
    except ComfyqError as exc:
        return comfy_error("invalid_image", exc.message, exc.message, status=exc.status if exc.status != 422 else 400)
    return Response(json.dumps({"name": upload.name, "subfolder": "", "type": "input"}), mimetype="application/json")


@bp.route("/upload/image", methods=["POST"])
def upload_image() -> Response:
    """Upload an image (multipart ``image``) as the student's; answer ``{name, subfolder, type}``."""
    return _upload(masking=False)


@bp.route("/upload/mask", methods=["POST"])
def upload_mask() -> Response:
    """Upload a mask of one of the student's images (``original_ref``); answer the masked image's name."""
    return _upload(masking=True)
