"""The node catalogue: what each simulated node takes and returns (``/object_info``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .files import Folders
from .knobs import Knobs

MAX_RESOLUTION = 16384
SAMPLERS = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
    "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
    "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm",
    "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "gradient_estimation",
    "er_sde", "seeds_2", "seeds_3", "ddim", "uni_pc", "uni_pc_bh2",
]
SCHEDULERS = [
    "simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
    "linear_quadratic", "kl_optimal",
]
IMAGE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
LATENT_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
CROP_METHODS = ["disabled", "center"]
MASK_CHANNELS = ["alpha", "red", "green", "blue"]
SAVE_HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
PREFIX_TOOLTIP = ("The prefix for the file to save. This may include formatting information such as "
                  "%date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes.")


@dataclass(frozen=True)
class Env:
    """What dynamic combo lists are read from."""

    folders: Folders
    knobs: Knobs


def size_input(default: int, minimum: int, step: int) -> tuple[str, dict[str, Any]]:
    """Return a width or height input declaration, up to ComfyUI's MAX_RESOLUTION."""
    return ("INT", {"default": default, "min": minimum, "max": MAX_RESOLUTION, "step": step})


@dataclass(frozen=True)
class NodeSpec:
    """One node class as ComfyUI describes it."""

    name: str
    display_name: str
    category: str
    inputs: Callable[[Env], dict[str, dict[str, Any]]]
    output: tuple[str, ...] = ()
    output_node: bool = False
    description: str = ""
    python_module: str = "nodes"
    # Inputs checked by the node's own VALIDATE_INPUTS: no range or combo check.
    custom_validated: tuple[str, ...] = field(default_factory=tuple)
    output_names: tuple[str, ...] = ()  # when they differ from the output types
    recorded: dict[str, Any] | None = None  # a recorded instance's own entry, served as it was

    def info(self, env: Env) -> dict[str, Any]:
        """Return this node's ``/object_info`` entry."""
        return self.recorded if self.recorded is not None else self._built(env)

    def _built(self, env: Env) -> dict[str, Any]:
        inputs = self.inputs(env)
        return {
            "input": inputs,
            "input_order": {section: list(values) for section, values in inputs.items()},
            "output": list(self.output),
            "output_is_list": [False] * len(self.output),
            "output_name": list(self.output_names or self.output),
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "python_module": self.python_module,
            "category": self.category,
            "output_node": self.output_node,
        }


SPECS: dict[str, NodeSpec] = {spec.name: spec for spec in [
    NodeSpec(
        "CheckpointLoaderSimple", "Load Checkpoint", "loaders",
        lambda env: {"required": {
            "ckpt_name": (list(env.knobs.checkpoints), {"tooltip": "The name of the checkpoint (model) to load."}),
        }},
        ("MODEL", "CLIP", "VAE"),
        description="Loads a diffusion model checkpoint, diffusion models are used to denoise latents.",
    ),
    NodeSpec(
        "CLIPTextEncode", "CLIP Text Encode (Prompt)", "conditioning",
        lambda env: {"required": {
            "text": ("STRING", {"multiline": True, "dynamicPrompts": True, "tooltip": "The text to be encoded."}),
            "clip": ("CLIP", {"tooltip": "The CLIP model used for encoding the text."}),
        }},
        ("CONDITIONING",),
        description=("Encodes a text prompt using a CLIP model into an embedding that can be used to guide "
                     "the diffusion model towards generating specific images."),
    ),
    NodeSpec(
        "EmptyLatentImage", "Empty Latent Image", "latent",
        lambda env: {"required": {
            "width": size_input(512, 16, 8),
            "height": size_input(512, 16, 8),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
        }},
        ("LATENT",),
        description="Create a new batch of empty latent images to be denoised via sampling.",
    ),
    NodeSpec(
        "KSampler", "KSampler", "sampling",
        lambda env: {"required": {
            "model": ("MODEL",),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
            "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
            "sampler_name": (list(SAMPLERS),),
            "scheduler": (list(SCHEDULERS),),
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "latent_image": ("LATENT",),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
        }},
        ("LATENT",),
        description="Uses the provided model, positive and negative conditioning to denoise the latent image.",
    ),
    NodeSpec(
        "VAEDecode", "VAE Decode", "latent",
        lambda env: {"required": {"samples": ("LATENT",), "vae": ("VAE",)}},
        ("IMAGE",),
        description="Decodes latent images back into pixel space images.",
    ),
    NodeSpec(
        "VAEEncode", "VAE Encode", "latent",
        lambda env: {"required": {"pixels": ("IMAGE",), "vae": ("VAE",)}},
        ("LATENT",),
    ),
    NodeSpec(
        "LatentUpscale", "Upscale Latent", "latent",
        lambda env: {"required": {
            "samples": ("LATENT",),
            "upscale_method": (list(LATENT_METHODS),),
            "width": size_input(512, 0, 8),
            "height": size_input(512, 0, 8),
            "crop": (list(CROP_METHODS),),
        }},
        ("LATENT",),
    ),
    NodeSpec(
        "LatentUpscaleBy", "Upscale Latent By", "latent",
        lambda env: {"required": {
            "samples": ("LATENT",),
            "upscale_method": (list(LATENT_METHODS),),
            "scale_by": ("FLOAT", {"default": 1.5, "min": 0.01, "max": 8.0, "step": 0.01}),
        }},
        ("LATENT",),
    ),
    NodeSpec(
        "VAEEncodeForInpaint", "VAE Encode (for Inpainting)", "latent/inpaint",
        lambda env: {"required": {
            "pixels": ("IMAGE",),
            "vae": ("VAE",),
            "mask": ("MASK",),
            "grow_mask_by": ("INT", {"default": 6, "min": 0, "max": 64, "step": 1}),
        }},
        ("LATENT",),
    ),
    NodeSpec(
        "SetLatentNoiseMask", "Set Latent Noise Mask", "latent/inpaint",
        lambda env: {"required": {"samples": ("LATENT",), "mask": ("MASK",)}},
        ("LATENT",),
    ),
    NodeSpec(
        "UpscaleModelLoader", "Load Upscale Model", "loaders",
        lambda env: {"required": {"model_name": (list(env.knobs.upscale_models),)}},
        ("UPSCALE_MODEL",),
        python_module="comfy_extras.nodes_upscale_model",
    ),
    NodeSpec(
        "ImageUpscaleWithModel", "Upscale Image (using Model)", "image/upscaling",
        lambda env: {"required": {"upscale_model": ("UPSCALE_MODEL",), "image": ("IMAGE",)}},
        ("IMAGE",),
        python_module="comfy_extras.nodes_upscale_model",
    ),
    NodeSpec(
        "SaveImage", "Save Image", "image",
        lambda env: {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images to save."}),
                "filename_prefix": ("STRING", {"default": "ComfyUI", "tooltip": PREFIX_TOOLTIP}),
            },
            "hidden": dict(SAVE_HIDDEN),
        },
        output_node=True,
        description="Saves the input images to your ComfyUI output directory.",
    ),
    NodeSpec(
        "PreviewImage", "Preview Image", "image",
        lambda env: {"required": {"images": ("IMAGE",)}, "hidden": dict(SAVE_HIDDEN)},
        output_node=True,
        description="Saves the input images to your ComfyUI output directory.",
    ),
]}


def _add_core_nodes() -> None:
    """Add ComfyUI's core image, mask and model-loader nodes (declared in modules that import this one)."""
    from .image_catalogue import IMAGE_SPECS
    from .model_loaders import MODEL_SPECS

    for spec in [*IMAGE_SPECS, *MODEL_SPECS]:
        SPECS.setdefault(spec.name, spec)


_add_core_nodes()


def object_info(env: Env, name: str | None = None) -> dict[str, Any]:
    """Return the catalogue, or one class of it, in ``/object_info`` shape."""
    if name is not None:
        spec = SPECS.get(name)
        return {name: spec.info(env)} if spec else {}
    return {spec.name: spec.info(env) for spec in SPECS.values()}
