"""Uploads: images and masks a user sends once, checked, stored by their sha256, and named by id afterwards."""
from __future__ import annotations

import hashlib
import re

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .accounts import visible_to
from .errors import InvalidRequest, NotFound, TooLarge
from .extensions import db
from .inputs import ImageRefused, StagedImage, keep
from .models import Upload, User

UPLOAD_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


def create_upload(user: User, data: bytes, kind: str, image_id: str | None = None) -> tuple[Upload, bool]:
    """Check and store an upload of ``user``; return it and whether it is new (the same bytes give the same one)."""
    limit = int(current_app.config["MAX_UPLOAD_BYTES"])
    if len(data) > limit:
        raise TooLarge(f"the file is {len(data)} bytes; uploads may be at most {limit} bytes",
                       {"files": {"file": ["too large"]}})
    if not data:
        raise InvalidRequest("the file is empty; send the image's bytes as the multipart field 'file'",
                             {"files": {"file": ["empty"]}})
    image = get_upload(image_id, user) if image_id else None
    if kind == "mask" and image is None:
        raise InvalidRequest("a mask needs the id of the image it belongs to: send the form field 'image'",
                             {"form": {"image": ["missing"]}})
    try:
        staged = keep(data, current_app.extensions["stores"][1], int(current_app.config["MAX_UPLOAD_PIXELS"]))
    except ImageRefused as exc:
        raise InvalidRequest(str(exc), {"files": {"file": [str(exc)]}}) from None
    if image is not None:
        check_pair(image, staged)
    digest = hashlib.sha256(data).hexdigest()
    found = db.session.scalar(select(Upload).where(Upload.user_id == user.id, Upload.sha256 == digest,
                                                   Upload.kind == kind))
    if found is not None:
        return found, False
    upload = Upload(user_id=user.id, kind=kind, sha256=digest, name=staged.name, size=len(data),
                    content_type=CONTENT_TYPES[staged.name.rsplit(".", 1)[1]], width=staged.width,
                    height=staged.height)
    db.session.add(upload)
    try:
        db.session.commit()
    except IntegrityError:  # the same bytes sent twice at once: the other request stored them
        db.session.rollback()
        return create_upload(user, data, kind, image_id)
    return upload, True


def check_pair(image: Upload | StagedImage, mask: Upload | StagedImage) -> None:
    """Refuse a mask whose size differs from its image's."""
    if (image.width, image.height) != (mask.width, mask.height):
        raise InvalidRequest(f"the mask is {mask.width}×{mask.height} but its image is {image.width}×"
                             f"{image.height}; a mask must be exactly as large as its image",
                             {"files": {"file": ["size differs from the image"]}})


def get_upload(upload_id: str, user: User) -> Upload:
    """Return an upload ``user`` may use, or raise NotFound (also for someone else's)."""
    upload = db.session.scalar(select(Upload).where(Upload.id == upload_id, visible_to(user, Upload.user_id)))
    if upload is None:
        raise NotFound(f"no upload {upload_id!r}; POST /v1/uploads returns the id to use")
    return upload
