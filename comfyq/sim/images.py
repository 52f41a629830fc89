"""Cheap, deterministic pictures made with Pillow."""
from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo

RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def digest(*parts: Any) -> str:
    """Return a stable hex digest of some JSON-able parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def render(key: str, index: int, width: int, height: int) -> Image.Image:
    """Draw the picture a latent key decodes to: a smooth blend of seeded colours."""
    seed = hashlib.sha512(f"{key}:{index}".encode()).digest()
    # 4x4 seeded pixels blown up bilinearly: costs about the same at any size.
    tiny = Image.frombytes("RGB", (4, 4), seed[:48])
    return tiny.resize((max(width, 1), max(height, 1)), Image.Resampling.BILINEAR)


def image_key(image: Image.Image) -> str:
    """Return a short fingerprint of an image's content."""
    thumb = image.convert("RGB").resize((8, 8), Image.Resampling.BOX)
    return hashlib.sha256(thumb.tobytes() + repr(image.size).encode()).hexdigest()


def scale(image: Image.Image, method: str, width: int, height: int, crop: str) -> Image.Image:
    """Resize like ImageScale: 0 keeps the aspect ratio, crop=center crops first."""
    src_w, src_h = image.size
    if width == 0 and height == 0:
        return image.copy()
    if width == 0:
        width = max(1, round(src_w * height / src_h))
    if height == 0:
        height = max(1, round(src_h * width / src_w))
    resample = RESAMPLE.get(method, Image.Resampling.BILINEAR)
    if crop == "center":
        return ImageOps.fit(image, (width, height), method=resample)
    return image.resize((width, height), resample)


def invert(image: Image.Image) -> Image.Image:
    """Return the colour negative of an image."""
    return ImageOps.invert(image.convert("RGB"))


def save_png(image: Image.Image, path: str, text: dict[str, str], compress_level: int) -> None:
    """Write a PNG carrying ComfyUI-style text chunks (prompt, workflow)."""
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    image.save(path, pnginfo=info, compress_level=compress_level)


def preview_frame(image: Image.Image) -> bytes:
    """Return a binary websocket preview: event 1, image type 1 (JPEG), JPEG bytes."""
    buffer = io.BytesIO()
    buffer.write((1).to_bytes(4, "big"))
    buffer.write((1).to_bytes(4, "big"))
    ImageOps.contain(image.convert("RGB"), (64, 64)).save(buffer, format="JPEG", quality=60)
    return buffer.getvalue()


def mask_of(image: Image.Image) -> Image.Image:
    """Return LoadImage's MASK: inverted alpha, or an empty mask without alpha."""
    if "A" in image.getbands():
        return ImageOps.invert(image.getchannel("A"))
    return Image.new("L", (64, 64), 0)


def encode(image: Image.Image, fmt: str, quality: int = 90) -> bytes:
    """Return an image encoded in a format."""
    buffer = io.BytesIO()
    if fmt.upper() in ("JPEG", "JPG"):
        image = image.convert("RGB")
    image.save(buffer, format=fmt, quality=quality)
    return buffer.getvalue()
