"""What each simulated node does: synthetic models and latents, real images."""
from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Awaitable, Callable

from PIL import Image, ImageOps

from . import images as imaging
from . import masks
from .image_nodes import IMAGE_IMPLEMENTATIONS
from .model_loaders import MODEL_IMPLEMENTATIONS
from .files import Folders, file_digest, next_save_path, temp_prefix
from .values import Conditioning, Handle, Latent, NodeContext
from .values import offload as _offload

__all__ = ["IMPLEMENTATIONS", "NodeContext", "fingerprint"]


async def checkpoint_loader(ctx: NodeContext, ckpt_name: str) -> tuple[Any, ...]:
    """Return model, CLIP and VAE handles named after the checkpoint."""
    return Handle("MODEL", ckpt_name), Handle("CLIP", ckpt_name), Handle("VAE", ckpt_name)


async def upscale_model_loader(ctx: NodeContext, model_name: str) -> tuple[Any, ...]:
    """Return an upscale-model handle."""
    return (Handle("UPSCALE_MODEL", model_name),)


async def clip_text_encode(ctx: NodeContext, text: str, clip: Handle) -> tuple[Any, ...]:
    """Return the text as conditioning."""
    return (Conditioning(text, clip.name),)


async def empty_latent(ctx: NodeContext, width: int, height: int, batch_size: int) -> tuple[Any, ...]:
    """Return an empty latent batch of the given size."""
    return ({"samples": Latent(width, height, batch_size, imaging.digest("empty", width, height))},)


async def ksampler(ctx: NodeContext, model: Handle, seed: int, steps: int, cfg: float, sampler_name: str,
                   scheduler: str, positive: Conditioning, negative: Conditioning, latent_image: dict[str, Any],
                   denoise: float) -> tuple[Any, ...]:
    """Report one progress step per sampler step and return a seed-determined latent."""
    source: Latent = latent_image["samples"]
    key = imaging.digest(model.name, seed, steps, cfg, sampler_name, scheduler, positive.text, negative.text,
                        source.key, denoise)
    for step in range(1, steps + 1):
        preview = imaging.render(key, step, 64, 64) if ctx.knobs.previews else None
        await ctx.progress(step, steps, preview)
    return ({"samples": Latent(source.width, source.height, source.batch, key)},)


async def vae_decode(ctx: NodeContext, samples: dict[str, Any], vae: Handle) -> tuple[Any, ...]:
    """Draw one picture per latent in the batch."""
    latent: Latent = samples["samples"]

    def draw() -> list[Image.Image]:
        return [imaging.render(latent.key, i, latent.width, latent.height) for i in range(latent.batch)]

    return (await _offload(latent.width * latent.height * latent.batch, draw),)


async def vae_encode(ctx: NodeContext, pixels: list[Image.Image], vae: Handle) -> tuple[Any, ...]:
    """Return a latent whose key follows the pictures' content."""
    width, height = pixels[0].size
    key = imaging.digest("encoded", vae.name, [imaging.image_key(p) for p in pixels])
    return ({"samples": Latent(width, height, len(pixels), key)},)


def _rescale(latent: Latent, width: int, height: int, method: str) -> dict[str, Any]:
    if width == 0 and height == 0:
        width, height = latent.width, latent.height
    elif width == 0:
        width = max(8, round(latent.width * height / latent.height))
    elif height == 0:
        height = max(8, round(latent.height * width / latent.width))
    return {"samples": Latent(width, height, latent.batch, imaging.digest(latent.key, width, height, method))}


async def latent_upscale(ctx: NodeContext, samples: dict[str, Any], upscale_method: str, width: int, height: int,
                         crop: str) -> tuple[Any, ...]:
    """Return the latent at a new size."""
    return (_rescale(samples["samples"], width, height, upscale_method),)


async def latent_upscale_by(ctx: NodeContext, samples: dict[str, Any], upscale_method: str,
                            scale_by: float) -> tuple[Any, ...]:
    """Return the latent scaled by a factor."""
    latent: Latent = samples["samples"]
    width, height = round(latent.width * scale_by), round(latent.height * scale_by)
    return (_rescale(latent, max(width, 8), max(height, 8), upscale_method),)


async def load_image(ctx: NodeContext, image: str) -> tuple[Any, ...]:
    """Load an input file as an image and its alpha mask."""
    with Image.open(ctx.folders.input_path(image)) as opened:
        picture = ImageOps.exif_transpose(opened)
        picture.load()
    mask = imaging.mask_of(picture)
    return ([picture.convert("RGB")], [mask])


async def image_scale(ctx: NodeContext, image: list[Image.Image], upscale_method: str, width: int, height: int,
                      crop: str) -> tuple[Any, ...]:
    """Resize every image of the batch."""
    def work() -> list[Image.Image]:
        return [imaging.scale(i, upscale_method, width, height, crop) for i in image]

    return (await _offload(max(width, 1) * max(height, 1) * len(image), work),)


async def image_scale_by(ctx: NodeContext, image: list[Image.Image], upscale_method: str,
                         scale_by: float) -> tuple[Any, ...]:
    """Resize every image of the batch by a factor."""
    width, height = image[0].size
    new = (max(1, round(width * scale_by)), max(1, round(height * scale_by)))
    return await image_scale(ctx, image, upscale_method, new[0], new[1], "disabled")


async def image_invert(ctx: NodeContext, image: list[Image.Image]) -> tuple[Any, ...]:
    """Return the colour negatives."""
    return ([imaging.invert(i) for i in image],)


async def upscale_with_model(ctx: NodeContext, upscale_model: Handle, image: list[Image.Image]) -> tuple[Any, ...]:
    """Enlarge by the model's factor, reporting one progress step per tile."""
    named = re.search(r"(\d+)x|x(\d+)", upscale_model.name.lower())
    factor = int(named.group(1) or named.group(2)) if named else 4
    width, height = image[0].size
    # ComfyUI upscales in 512px tiles overlapping by 32 and reports one step per tile.
    tiles = len(image) * math.ceil(width / 480) * math.ceil(height / 480)
    for tile in range(1, tiles + 1):
        await ctx.progress(tile, tiles, None)

    def work() -> list[Image.Image]:
        return [i.resize((width * factor, height * factor), Image.Resampling.BICUBIC) for i in image]

    return (await _offload(width * height * factor * factor * len(image), work),)


def _png_text(ctx: NodeContext) -> dict[str, str]:
    text = {"prompt": json.dumps(ctx.prompt)}
    for key, value in (ctx.extra_data.get("extra_pnginfo") or {}).items():
        text[key] = json.dumps(value)
    return text


async def _save(ctx: NodeContext, pictures: list[Image.Image], folder: str, prefix: str, kind: str,
                level: int) -> dict[str, Any]:
    full, name, subfolder, counter = next_save_path(folder, prefix)
    text = _png_text(ctx) if kind == "output" else {}
    saved = []
    for batch_number, picture in enumerate(pictures):
        filename = f"{name.replace('%batch_num%', str(batch_number))}_{counter + batch_number:05}_.png"
        path = os.path.join(full, filename)
        await _offload(picture.width * picture.height, imaging.save_png, picture, path, text, level)
        saved.append({"filename": filename, "subfolder": subfolder, "type": kind})
    return {"ui": {"images": saved}, "result": ()}


async def save_image(ctx: NodeContext, images: list[Image.Image], filename_prefix: str = "ComfyUI") -> dict[str, Any]:
    """Write PNGs to output/ with ComfyUI's counters and prompt metadata."""
    return await _save(ctx, images, ctx.folders.output, filename_prefix, "output", 4)


async def preview_image(ctx: NodeContext, images: list[Image.Image]) -> dict[str, Any]:
    """Write PNGs to temp/ under a random ComfyUI_temp_ prefix."""
    return await _save(ctx, images, ctx.folders.temp, temp_prefix(), "temp", 1)


IMPLEMENTATIONS: dict[str, Callable[..., Awaitable[Any]]] = {
    "CheckpointLoaderSimple": checkpoint_loader,
    "CLIPTextEncode": clip_text_encode,
    "EmptyLatentImage": empty_latent,
    "KSampler": ksampler,
    "VAEDecode": vae_decode,
    "VAEEncode": vae_encode,
    "LatentUpscale": latent_upscale,
    "LatentUpscaleBy": latent_upscale_by,
    "LoadImage": load_image,
    "ImageScale": image_scale,
    "ImageScaleBy": image_scale_by,
    "ImageInvert": image_invert,
    "UpscaleModelLoader": upscale_model_loader,
    "ImageUpscaleWithModel": upscale_with_model,
    "LoadImageMask": masks.load_image_mask,
    "VAEEncodeForInpaint": masks.vae_encode_for_inpaint,
    "SetLatentNoiseMask": masks.set_latent_noise_mask,
    "SaveImage": save_image,
    "PreviewImage": preview_image,
    **IMAGE_IMPLEMENTATIONS,
    **MODEL_IMPLEMENTATIONS,
}


def fingerprint(class_type: str, inputs: dict[str, Any], folders: Folders) -> Any:
    """Return ComfyUI's IS_CHANGED value: image loaders change when their file does."""
    if class_type in ("LoadImage", "LoadImageMask"):
        path = folders.input_path(str(inputs.get("image")))
        return file_digest(path) if os.path.isfile(path) else None
    return None
