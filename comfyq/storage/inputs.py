"""Input images: check the bytes a user sends and store them once, named by their sha256 for ComfyUI."""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from ..errors import InvalidRequest, TooLarge
from .base import Store

DATA_URL = re.compile(r"data:(?P<mime>image/[a-z0-9.+-]+)?;base64,(?P<data>.*)", re.S)
STAGED = re.compile(r"[0-9a-f]{64}\.(png|jpg|webp)")
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


@dataclass(frozen=True)
class StagedImage:
    """An image stored once under its sha256, as ComfyUI's LoadImage will name it."""

    name: str
    width: int
    height: int


class ImageRefused(Exception):
    """The bytes are not an image comfyq accepts; the message says why."""


def decode_data_url(value: object) -> bytes:
    """Return the bytes of a ``data:image/…;base64,…`` value, or raise InvalidRequest saying what to send."""
    match = DATA_URL.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidRequest("give an upload id (POST /v1/uploads) or the image as a data URL: "
                             "data:image/png;base64,<base64 bytes>")
    try:
        return base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("the data URL is not valid base64") from None


def keep(data: bytes, store: Store | None, max_bytes: int, max_pixels: int) -> StagedImage:
    """Check that ``data`` is one whole PNG, JPEG or WebP within the caps; keep it once by its hash in ``store``."""
    if len(data) > max_bytes:
        raise TooLarge(f"the image is {len(data)} bytes; at most {max_bytes} are accepted")
    try:
        # Only these decoders ever run: nothing else (EPS, say, which calls Ghostscript) is even tried.
        image = Image.open(io.BytesIO(data), formats=tuple(EXTENSIONS))
    except Image.DecompressionBombError:
        raise ImageRefused(f"the image claims far more pixels than the {max_pixels} accepted") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageRefused("the data is not a readable PNG, JPEG or WebP image") from None
    with image:
        kind, width, height = image.format, image.width, image.height
        if width * height > max_pixels:  # checked before decoding: a small file may expand to gigabytes
            raise ImageRefused(f"the image is {width}×{height} = {width * height} pixels; at most {max_pixels} "
                               "are accepted")
        if getattr(image, "n_frames", 1) > 1:
            raise ImageRefused("animated images are not accepted; send a single frame")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            raise ImageRefused("the image is truncated or corrupt: it cannot be decoded") from None
    name = f"{hashlib.sha256(data).hexdigest()}.{EXTENSIONS[str(kind)]}"
    if store is not None and not store.exists(name):
        with store.writer(name) as fh:  # same bytes whoever wins: the name is their hash
            fh.write(data)
    return StagedImage(name, width, height)
