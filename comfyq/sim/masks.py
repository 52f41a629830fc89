"""Inpainting nodes: masks loaded from images and latents that carry them."""
from __future__ import annotations

from typing import Any

from PIL import Image, ImageFilter, ImageOps

from . import images as imaging
from .values import Handle, Latent, NodeContext, offload


def channel_mask(picture: Image.Image, channel: str) -> Image.Image:
    """Return one channel of a picture as a mask; alpha is inverted, as ComfyUI does."""
    rgba = picture.convert("RGBA")
    band = channel[0].upper()
    mask = rgba.getchannel(band)
    return ImageOps.invert(mask) if band == "A" else mask


async def load_image_mask(ctx: NodeContext, image: str, channel: str) -> tuple[Any, ...]:
    """Load one channel of an input file as a MASK."""
    with Image.open(ctx.folders.input_path(image)) as opened:
        picture = ImageOps.exif_transpose(opened)
        picture.load()
    return ([channel_mask(picture, channel)],)


def _grown(mask: Image.Image, size: tuple[int, int], grow_mask_by: int) -> Image.Image:
    """Fit a mask to the pictures and dilate it, so the inpainted seam blends."""
    fitted = mask.convert("L").resize(size, Image.Resampling.BILINEAR)
    if grow_mask_by > 0:
        fitted = fitted.filter(ImageFilter.MaxFilter(2 * grow_mask_by + 1))
    return fitted.point(lambda value: 255 if value >= 128 else 0)


async def vae_encode_for_inpaint(ctx: NodeContext, pixels: list[Image.Image], vae: Handle, mask: list[Image.Image],
                                 grow_mask_by: int = 6) -> tuple[Any, ...]:
    """Return a latent of the pictures (cropped to multiples of 8) with a grown noise mask."""
    width, height = pixels[0].size
    # The VAE works on 8-pixel cells: ComfyUI crops the remainder away.
    width, height = max(8, width // 8 * 8), max(8, height // 8 * 8)
    noise_mask = await offload(width * height, _grown, mask[0], (width, height), grow_mask_by)
    key = imaging.digest("inpaint", vae.name, [imaging.image_key(p) for p in pixels], imaging.image_key(noise_mask))
    return ({"samples": Latent(width, height, len(pixels), key), "noise_mask": [noise_mask]},)


async def set_latent_noise_mask(ctx: NodeContext, samples: dict[str, Any], mask: list[Image.Image]) -> tuple[Any, ...]:
    """Return the latent with a noise mask: only the masked part is resampled."""
    latent: Latent = samples["samples"]
    key = imaging.digest("masked", latent.key, imaging.image_key(mask[0]))
    return ({**samples, "samples": Latent(latent.width, latent.height, latent.batch, key), "noise_mask": list(mask)},)
