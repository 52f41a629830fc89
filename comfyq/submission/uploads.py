"""Uploads: images and masks a user sends once, checked, stored by their sha256, and named by id afterwards.

Every image a user gives comfyq becomes one of their uploads, whether sent to
``POST /v1/uploads`` or inline as a ``data:`` URL in template params; the bytes
are stored once whoever sends them, but a user may only name their own.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from ..accounts.users import visible_row
from ..errors import InvalidRequest, NotFound
from ..db.extensions import db
from ..storage.inputs import STAGED, ImageRefused, StagedImage, keep
from ..db.models import Upload, User
from ..storage.base import Store, content_type

UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KINDS = ("image", "mask")


def create_upload(user: User, data: bytes, kind: str, image_id: str | None = None) -> tuple[Upload, bool]:
    """Check and store an upload of ``user``; return it and whether it is new (the same bytes give the same one)."""
    if not data:
        raise InvalidRequest("the file is empty; send the image's bytes as the multipart field 'file'",
                             {"files": {"file": ["empty"]}})
    if image_id is not None and kind != "mask":
        raise InvalidRequest("only a mask names an image (form field 'image'); send kind=mask or drop 'image'",
                             {"form": {"image": ["only for masks"]}})
    image = get_upload(image_id, user) if image_id is not None else None
    staged = _kept(data, current_app.extensions["stores"].inputs)
    if image is not None:
        check_pair(image, staged, {"files": {"file": ["size differs from the image"]}})
    digest = hashlib.sha256(data).hexdigest()
    found = _find(user, digest, kind)
    if found is not None:
        return found, False
    upload = Upload(user_id=user.id, kind=kind, sha256=digest, name=staged.name, size=len(data),
                    content_type=content_type(staged.name), width=staged.width, height=staged.height)
    db.session.add(upload)
    try:
        db.session.commit()
    except IntegrityError:  # the same bytes sent twice at once: the other request stored them
        db.session.rollback()
        found = _find(user, digest, kind)
        if found is None:
            raise
        return found, False
    return upload, True


def checked(data: bytes) -> StagedImage:
    """Check ``data`` as an upload is checked, storing nothing (for an estimate); return what it would be."""
    return _kept(data, None)


def _kept(data: bytes, store: Store | None) -> StagedImage:
    """Check ``data`` against the upload caps and keep it in ``store`` (None: nowhere)."""
    config = current_app.config
    try:
        return keep(data, store, int(config["MAX_UPLOAD_BYTES"]), int(config["MAX_UPLOAD_PIXELS"]))
    except ImageRefused as exc:
        raise InvalidRequest(str(exc), {"files": {"file": [str(exc)]}}) from None


def _find(user: User, digest: str, kind: str) -> Upload | None:
    """Return ``user``'s upload of these bytes as this kind, if any."""
    return db.session.scalar(select(Upload).where(Upload.user_id == user.id, Upload.sha256 == digest,
                                                  Upload.kind == kind))


def check_pair(image: Upload | StagedImage, mask: Upload | StagedImage, where: dict[str, Any],
               prefix: str = "") -> None:
    """Refuse a mask whose size differs from its image's, reporting it at ``where``."""
    if (image.width, image.height) != (mask.width, mask.height):
        raise InvalidRequest(f"{prefix}the mask is {mask.width}×{mask.height} but its image is {image.width}×"
                             f"{image.height}; a mask must be exactly as large as its image", where)


def get_upload(upload_id: str, user: User) -> Upload:
    """Return an upload ``user`` may use, or raise NotFound (also for someone else's)."""
    upload: Upload = visible_row(Upload, upload_id, user,
                                 f"no upload {upload_id!r}; POST /v1/uploads returns the id to use")
    return upload


def upload_named(name: str, kind: str, user: User) -> Upload:
    """Return the ``kind`` upload of ``user`` stored as ``name`` (how a finished job's params name it)."""
    upload = db.session.scalar(select(Upload).where(Upload.name == name, Upload.kind == kind,
                                                    Upload.user_id == user.id))
    if upload is None:
        raise NotFound(f"no {kind} {name!r} among your uploads; upload it (POST /v1/uploads) or send it inline")
    return upload


def stored_names(values: Iterable[str], user: User) -> dict[str, str]:
    """Map each of ``values`` that names an upload of ``user`` (its id or stored name) to the stored name."""
    given = set(values)
    ids = {v for v in given if UPLOAD_ID.fullmatch(v)}
    names = {v for v in given if STAGED.fullmatch(v)}
    if not ids and not names:
        return {}
    found = db.session.execute(select(Upload.id, Upload.name).where(
        Upload.user_id == user.id, or_(Upload.id.in_(ids), Upload.name.in_(names))))
    return {key: row.name for row in found for key in (row.id, row.name) if key in given}
