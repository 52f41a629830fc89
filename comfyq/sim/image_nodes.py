"""ComfyUI's core model-free image and mask nodes, run for real on small pictures with Pillow.

An IMAGE is a list of pictures (a batch), a MASK a list of ``L`` pictures
where 255 is ComfyUI's 1.0. Results follow their inputs, so two different
graphs give two different files.
"""
from __future__ import annotations

from typing import Any, Callable

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

from .values import NodeContext, offload

BLENDS: dict[str, Callable[[Image.Image, Image.Image], Image.Image]] = {
    "normal": lambda a, b: b,
    "multiply": ImageChops.multiply,
    "screen": ImageChops.screen,
    "overlay": ImageChops.overlay,
    "soft_light": ImageChops.soft_light,
    "difference": ImageChops.difference,
}
CHANNELS = {"red": "R", "green": "G", "blue": "B", "alpha": "A"}
PAD_GREY = 128  # ComfyUI fills the new border with 0.5


async def _each(images: list[Image.Image], work: Callable[[Image.Image], Image.Image]) -> list[Image.Image]:
    """Apply ``work`` to every picture of a batch, off the event loop when they are large."""
    pixels = sum(i.width * i.height for i in images)
    return await offload(pixels, lambda: [work(i) for i in images])


async def empty_image(ctx: NodeContext, width: int, height: int, batch_size: int = 1,
                      color: int = 0) -> tuple[Any, ...]:
    """Return a batch of pictures of one colour (0xRRGGBB)."""
    rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
    return ([Image.new("RGB", (width, height), rgb) for _ in range(batch_size)],)


async def image_blur(ctx: NodeContext, image: list[Image.Image], blur_radius: int, sigma: float) -> tuple[Any, ...]:
    """Blur with a Gaussian of ``sigma`` (the kernel reaching ``blur_radius``)."""
    return (await _each(image, lambda i: i.filter(ImageFilter.GaussianBlur(min(sigma, blur_radius)))),)


async def image_sharpen(ctx: NodeContext, image: list[Image.Image], sharpen_radius: int, sigma: float,
                        alpha: float) -> tuple[Any, ...]:
    """Sharpen by unsharp masking, ``alpha`` as its strength."""
    mask = ImageFilter.UnsharpMask(radius=min(sigma, sharpen_radius), percent=round(alpha * 100), threshold=0)
    return (await _each(image, lambda i: i.filter(mask)),)


async def image_blend(ctx: NodeContext, image1: list[Image.Image], image2: list[Image.Image], blend_factor: float,
                      blend_mode: str) -> tuple[Any, ...]:
    """Blend the second batch onto the first (resized to it) by a mode, then mix by ``blend_factor``."""
    def work(pair: tuple[Image.Image, Image.Image]) -> Image.Image:
        base, top = pair[0].convert("RGB"), pair[1].convert("RGB")
        if top.size != base.size:
            top = ImageOps.fit(top, base.size, method=Image.Resampling.BICUBIC)
        return Image.blend(base, BLENDS[blend_mode](base, top), blend_factor)

    pairs = [(a, image2[min(n, len(image2) - 1)]) for n, a in enumerate(image1)]
    return (await offload(sum(a.width * a.height for a in image1), lambda: [work(p) for p in pairs]),)


async def image_crop(ctx: NodeContext, image: list[Image.Image], width: int, height: int, x: int,
                     y: int) -> tuple[Any, ...]:
    """Cut a ``width`` × ``height`` window at (x, y), kept inside the picture."""
    def work(picture: Image.Image) -> Image.Image:
        left, top = min(x, picture.width - 1), min(y, picture.height - 1)
        return picture.crop((left, top, min(left + width, picture.width), min(top + height, picture.height)))

    return (await _each(image, work),)


async def image_composite_masked(ctx: NodeContext, destination: list[Image.Image], source: list[Image.Image], x: int,
                                 y: int, resize_source: bool, mask: list[Image.Image] | None = None) -> tuple[Any, ...]:
    """Paste the source onto the destination at (x, y), through the mask when one is given."""
    def work(index: int) -> Image.Image:
        base = destination[index].copy()
        top = source[min(index, len(source) - 1)].convert(base.mode)
        if resize_source:
            top = top.resize(base.size, Image.Resampling.BILINEAR)
        through = mask[min(index, len(mask) - 1)].convert("L").resize(top.size) if mask else None
        base.paste(top, (x, y), through)
        return base

    pixels = sum(i.width * i.height for i in destination)
    return (await offload(pixels, lambda: [work(n) for n in range(len(destination))]),)


def _outpaint_mask(size: tuple[int, int], inner: tuple[int, int, int, int], pads: tuple[int, int, int, int],
                   feathering: int) -> Image.Image:
    """Return the mask of the new border: 255 outside the picture, fading into it over ``feathering`` pixels."""
    mask = Image.new("L", size, 255)
    draw = ImageDraw.Draw(mask)
    left, top, right, bottom = inner
    draw.rectangle((left, top, right - 1, bottom - 1), fill=0)
    # Farthest ring first: nearer rings are brighter and overwrite where two edges meet.
    for ring in range(min(feathering, (right - left) // 2, (bottom - top) // 2) - 1, -1, -1):
        value = round(((feathering - ring) / feathering) ** 2 * 255)
        if pads[0]:
            draw.line((left + ring, top, left + ring, bottom - 1), fill=value)
        if pads[1]:
            draw.line((left, top + ring, right - 1, top + ring), fill=value)
        if pads[2]:
            draw.line((right - 1 - ring, top, right - 1 - ring, bottom - 1), fill=value)
        if pads[3]:
            draw.line((left, bottom - 1 - ring, right - 1, bottom - 1 - ring), fill=value)
    return mask


async def image_pad_for_outpaint(ctx: NodeContext, image: list[Image.Image], left: int, top: int, right: int,
                                 bottom: int, feathering: int) -> tuple[Any, ...]:
    """Add a grey border and return the pictures with the mask of what to paint."""
    width, height = image[0].size
    size = (width + left + right, height + top + bottom)

    def pad(picture: Image.Image) -> Image.Image:
        canvas = Image.new("RGB", size, (PAD_GREY,) * 3)
        canvas.paste(picture.convert("RGB"), (left, top))
        return canvas

    mask = _outpaint_mask(size, (left, top, left + width, top + height), (left, top, right, bottom), feathering)
    return (await _each(image, pad), [mask])


async def image_to_mask(ctx: NodeContext, image: list[Image.Image], channel: str) -> tuple[Any, ...]:
    """Return one channel of each picture as a mask."""
    return ([i.convert("RGBA").getchannel(CHANNELS[channel]) for i in image],)


async def mask_to_image(ctx: NodeContext, mask: list[Image.Image]) -> tuple[Any, ...]:
    """Return each mask as a grey picture."""
    return ([m.convert("L").convert("RGB") for m in mask],)


async def solid_mask(ctx: NodeContext, value: float, width: int, height: int) -> tuple[Any, ...]:
    """Return a mask of one value everywhere."""
    return ([Image.new("L", (width, height), round(value * 255))],)


async def join_image_with_alpha(ctx: NodeContext, image: list[Image.Image],
                               alpha: list[Image.Image]) -> tuple[Any, ...]:
    """Give each picture an alpha channel: the inverted mask (a mask marks what is cut away)."""
    def work(index: int) -> Image.Image:
        picture = image[index].convert("RGBA")
        cut = alpha[min(index, len(alpha) - 1)].convert("L").resize(picture.size, Image.Resampling.BILINEAR)
        picture.putalpha(ImageOps.invert(cut))
        return picture

    return ([work(n) for n in range(len(image))],)


async def image_rgb_to_yuv(ctx: NodeContext, image: list[Image.Image]) -> tuple[Any, ...]:
    """Split each picture into its Y, U and V planes, each a grey picture."""
    planes = [i.convert("RGB").convert("YCbCr").split() for i in image]
    return tuple([p[n].convert("RGB") for p in planes] for n in range(3))


IMAGE_IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {
    "EmptyImage": empty_image,
    "ImageBlur": image_blur,
    "ImageSharpen": image_sharpen,
    "ImageBlend": image_blend,
    "ImageCrop": image_crop,
    "ImageCompositeMasked": image_composite_masked,
    "ImagePadForOutpaint": image_pad_for_outpaint,
    "ImageToMask": image_to_mask,
    "MaskToImage": mask_to_image,
    "SolidMask": solid_mask,
    "JoinImageWithAlpha": join_image_with_alpha,
    "ImageRGBToYUV": image_rgb_to_yuv,
}
