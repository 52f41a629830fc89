"""Input images: decode what a request sends, store it content-addressed, name it for ComfyUI."""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass

from flask import current_app
from PIL import Image, UnidentifiedImageError

from .errors import InvalidRequest
from .storage import Store

DATA_URL = re.compile(r"^data:(?P<mime>image/[a-z0-9.+-]+)?;base64,(?P<data>.*)$", re.S)
STAGED = re.compile(r"^[0-9a-f]{64}\.(png|jpg|webp)$")
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


@dataclass(frozen=True)
class StagedImage:
    """An image stored once under its sha256, as ComfyUI's LoadImage will name it."""

    name: str
    width: int
    height: int


def _bad(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"params.{param}: {message}", {"json": {"params": {param: [message]}}})


def stage(value: object, param: str, store: Store) -> StagedImage:
    """Store a ``data:image/…;base64,…`` value (or find an already staged name); return it."""
    if isinstance(value, str) and STAGED.match(value):
        try:
            data = store.read(value)
        except FileNotFoundError:
            raise _bad(param, f"no staged image {value!r}; send the image itself as a data: URL") from None
        with Image.open(io.BytesIO(data)) as image:
            return StagedImage(value, image.width, image.height)
    match = DATA_URL.match(value) if isinstance(value, str) else None
    if match is None:
        raise _bad(param, "give the image as a data URL: data:image/png;base64,<base64 bytes>")
    try:
        data = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise _bad(param, "the data URL is not valid base64") from None
    try:
        return keep(data, store, current_app.config["MAX_UPLOAD_PIXELS"])
    except ImageRefused as exc:
        raise _bad(param, str(exc)) from None


class ImageRefused(ValueError):
    """The bytes are not an image comfyq accepts; the message says why."""


def keep(data: bytes, store: Store, max_pixels: int) -> StagedImage:
    """Check that ``data`` is a whole PNG, JPEG or WebP of at most ``max_pixels``; store it once by its hash."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageRefused(f"the image claims far more pixels than the {max_pixels} accepted") from None
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ImageRefused("the data is not a readable image (PNG, JPEG or WebP)") from None
    with image:
        kind, width, height = image.format, image.width, image.height
        if width * height > max_pixels:  # checked before decoding: a small file may expand to gigabytes
            raise ImageRefused(f"the image is {width}×{height} = {width * height} pixels; at most {max_pixels} "
                               "are accepted")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            raise ImageRefused("the image is truncated or corrupt: it cannot be decoded") from None
    if kind not in EXTENSIONS:
        raise ImageRefused(f"{kind} images are not accepted; send PNG, JPEG or WebP")
    name = f"{hashlib.sha256(data).hexdigest()}.{EXTENSIONS[kind]}"
    if not store.exists(name):
        with store.writer(name) as fh:  # same bytes whoever wins: the name is their hash
            fh.write(data)
    return StagedImage(name, width, height)
