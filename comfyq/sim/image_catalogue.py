"""ComfyUI's core model-free image and mask nodes, as ``/object_info`` declares them (in the simulator's words)."""
from __future__ import annotations

from typing import Any

from .catalogue import CROP_METHODS, IMAGE_METHODS, MASK_CHANNELS, MAX_RESOLUTION, NodeSpec, size_input

BLEND_MODES = ["normal", "multiply", "screen", "overlay", "soft_light", "difference"]
IMAGE_CHANNELS = ["red", "green", "blue", "alpha"]


def _int(default: int, minimum: int, maximum: int = MAX_RESOLUTION, step: int = 1,
         **extra: Any) -> tuple[str, dict[str, Any]]:
    """Return an INT input declaration."""
    return ("INT", {"default": default, "min": minimum, "max": maximum, "step": step, **extra})


def _float(default: float, minimum: float, maximum: float, step: float) -> tuple[str, dict[str, Any]]:
    """Return a FLOAT input declaration."""
    return ("FLOAT", {"default": default, "min": minimum, "max": maximum, "step": step})


POST = "comfy_extras.nodes_post_processing"
MASKS = "comfy_extras.nodes_mask"

IMAGE_SPECS: list[NodeSpec] = [
    NodeSpec(
        "LoadImage", "Load Image", "image",
        lambda env: {"required": {"image": (env.folders.input_images(), {"image_upload": True})}},
        ("IMAGE", "MASK"),
        custom_validated=("image",),
    ),
    NodeSpec(
        "LoadImageMask", "Load Image (as Mask)", "mask",
        lambda env: {"required": {
            "image": (env.folders.input_images(), {"image_upload": True}),
            "channel": (list(MASK_CHANNELS),),
        }},
        ("MASK",),
        custom_validated=("image",),
    ),
    NodeSpec(
        "ImageScale", "Upscale Image", "image/upscaling",
        lambda env: {"required": {
            "image": ("IMAGE",),
            "upscale_method": (list(IMAGE_METHODS),),
            "width": size_input(512, 0, 1),
            "height": size_input(512, 0, 1),
            "crop": (list(CROP_METHODS),),
        }},
        ("IMAGE",),
    ),
    NodeSpec(
        "ImageScaleBy", "Upscale Image By", "image/upscaling",
        lambda env: {"required": {
            "image": ("IMAGE",),
            "upscale_method": (list(IMAGE_METHODS),),
            "scale_by": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01}),
        }},
        ("IMAGE",),
    ),
    NodeSpec(
        "ImageInvert", "Invert Image", "image",
        lambda env: {"required": {"image": ("IMAGE",)}},
        ("IMAGE",),
    ),
    NodeSpec(
        "EmptyImage", "EmptyImage", "image",
        lambda env: {"required": {
            "width": _int(512, 1), "height": _int(512, 1), "batch_size": _int(1, 1, 4096),
            "color": _int(0, 0, 0xFFFFFF, display="color"),
        }},
        ("IMAGE",),
    ),
    NodeSpec(
        "ImageBlur", "Image Blur", "image/postprocessing",
        lambda env: {"required": {
            "image": ("IMAGE",), "blur_radius": _int(1, 1, 31), "sigma": _float(1.0, 0.1, 10.0, 0.1),
        }},
        ("IMAGE",), python_module=POST,
    ),
    NodeSpec(
        "ImageSharpen", "Image Sharpen", "image/postprocessing",
        lambda env: {"required": {
            "image": ("IMAGE",), "sharpen_radius": _int(1, 1, 31), "sigma": _float(1.0, 0.1, 10.0, 0.01),
            "alpha": _float(1.0, 0.0, 5.0, 0.01),
        }},
        ("IMAGE",), python_module=POST,
    ),
    NodeSpec(
        "ImageBlend", "Image Blend", "image/postprocessing",
        lambda env: {"required": {
            "image1": ("IMAGE",), "image2": ("IMAGE",), "blend_factor": _float(0.5, 0.0, 1.0, 0.01),
            "blend_mode": (list(BLEND_MODES),),
        }},
        ("IMAGE",), python_module=POST,
    ),
    NodeSpec(
        "ImageCrop", "Image Crop", "image/transform",
        lambda env: {"required": {
            "image": ("IMAGE",), "width": _int(512, 1), "height": _int(512, 1), "x": _int(0, 0), "y": _int(0, 0),
        }},
        ("IMAGE",), python_module="comfy_extras.nodes_images",
    ),
    NodeSpec(
        "ImageCompositeMasked", "ImageCompositeMasked", "image",
        lambda env: {
            "required": {
                "destination": ("IMAGE",), "source": ("IMAGE",), "x": _int(0, 0), "y": _int(0, 0),
                "resize_source": ("BOOLEAN", {"default": False}),
            },
            "optional": {"mask": ("MASK",)},
        },
        ("IMAGE",), python_module=MASKS,
    ),
    NodeSpec(
        "ImagePadForOutpaint", "Pad Image for Outpainting", "image",
        lambda env: {"required": {
            "image": ("IMAGE",), "left": _int(0, 0, step=8), "top": _int(0, 0, step=8),
            "right": _int(0, 0, step=8), "bottom": _int(0, 0, step=8), "feathering": _int(40, 0),
        }},
        ("IMAGE", "MASK"),
    ),
    NodeSpec(
        "ImageToMask", "Convert Image to Mask", "mask",
        lambda env: {"required": {"image": ("IMAGE",), "channel": (list(IMAGE_CHANNELS),)}},
        ("MASK",), python_module=MASKS,
    ),
    NodeSpec(
        "MaskToImage", "Convert Mask to Image", "mask",
        lambda env: {"required": {"mask": ("MASK",)}},
        ("IMAGE",), python_module=MASKS,
    ),
    NodeSpec(
        "SolidMask", "SolidMask", "mask",
        lambda env: {"required": {
            "value": _float(1.0, 0.0, 1.0, 0.01), "width": _int(512, 1), "height": _int(512, 1),
        }},
        ("MASK",), python_module=MASKS,
    ),
    NodeSpec(
        "JoinImageWithAlpha", "Join Image with Alpha", "mask/compositing",
        lambda env: {"required": {"image": ("IMAGE",), "alpha": ("MASK",)}},
        ("IMAGE",), python_module="comfy_extras.nodes_compositing",
    ),
    NodeSpec(
        "ImageRGBToYUV", "Image RGB to YUV", "image/batch",
        lambda env: {"required": {"image": ("IMAGE",)}},
        ("IMAGE", "IMAGE", "IMAGE"), python_module="comfy_extras.nodes_morphology", output_names=("Y", "U", "V"),
    ),
]
