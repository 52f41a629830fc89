"""ComfyUI's other core model loaders: declared and run as stand-ins, with empty model folders.

A real ComfyUI always has these classes, and ComfyUI's editor (frontend 1.27)
looks every one of them up as it builds its first combo widget, so a catalogue
without them leaves the editor unable to create a loader node. Their folders
hold no models in the simulator: each choice list is empty, as on a fresh
ComfyUI install, so a prompt naming a model fails validation the way it
would there.
"""
from __future__ import annotations

from typing import Any, Callable

from .catalogue import NodeSpec
from .values import Handle, NodeContext

WEIGHT_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]


def _strength(tooltip: str) -> tuple[str, dict[str, Any]]:
    """Return a LoRA strength input declaration."""
    return ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01, "tooltip": tooltip})


def _loader(name: str, display: str, input_name: str, output: str, category: str = "loaders",
            module: str = "nodes") -> NodeSpec:
    """Return a loader that takes one (empty) model list and gives one handle."""
    return NodeSpec(name, display, category, lambda env: {"required": {input_name: ([],)}}, (output,),
                    python_module=module)


MODEL_SPECS: list[NodeSpec] = [
    NodeSpec(
        "ImageOnlyCheckpointLoader", "Image Only Checkpoint Loader (img2vid model)", "loaders/video_models",
        lambda env: {"required": {"ckpt_name": ([],)}},
        ("MODEL", "CLIP_VISION", "VAE"),
        python_module="comfy_extras.nodes_video_model",
    ),
    NodeSpec(
        "LoraLoader", "Load LoRA", "loaders",
        lambda env: {"required": {
            "model": ("MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}),
            "clip": ("CLIP", {"tooltip": "The CLIP model the LoRA will be applied to."}),
            "lora_name": ([], {"tooltip": "The name of the LoRA."}),
            "strength_model": _strength("How strongly to modify the diffusion model."),
            "strength_clip": _strength("How strongly to modify the CLIP model."),
        }},
        ("MODEL", "CLIP"),
        description="LoRAs are used to modify diffusion and CLIP models, altering the way in which latents "
                    "are denoised such as applying styles. Multiple LoRA nodes can be linked together.",
    ),
    NodeSpec(
        "LoraLoaderModelOnly", "LoraLoaderModelOnly", "loaders",
        lambda env: {"required": {
            "model": ("MODEL",),
            "lora_name": ([],),
            "strength_model": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}),
        }},
        ("MODEL",),
    ),
    _loader("VAELoader", "Load VAE", "vae_name", "VAE"),
    _loader("ControlNetLoader", "Load ControlNet Model", "control_net_name", "CONTROL_NET"),
    NodeSpec(
        "UNETLoader", "Load Diffusion Model", "advanced/loaders",
        lambda env: {"required": {"unet_name": ([],), "weight_dtype": (list(WEIGHT_DTYPES),)}},
        ("MODEL",),
    ),
    _loader("StyleModelLoader", "Load Style Model", "style_model_name", "STYLE_MODEL"),
    _loader("GLIGENLoader", "GLIGENLoader", "gligen_name", "GLIGEN"),
]


async def image_only_checkpoint_loader(ctx: NodeContext, ckpt_name: str) -> tuple[Any, ...]:
    """Return model, CLIP-vision and VAE handles named after the checkpoint."""
    return Handle("MODEL", ckpt_name), Handle("CLIP_VISION", ckpt_name), Handle("VAE", ckpt_name)


async def lora_loader(ctx: NodeContext, model: Handle, clip: Handle, lora_name: str, strength_model: float,
                      strength_clip: float) -> tuple[Any, ...]:
    """Return the model and CLIP with the LoRA's name and strengths folded into their names."""
    return (Handle("MODEL", f"{model.name}+{lora_name}@{strength_model}"),
            Handle("CLIP", f"{clip.name}+{lora_name}@{strength_clip}"))


async def lora_loader_model_only(ctx: NodeContext, model: Handle, lora_name: str,
                                 strength_model: float) -> tuple[Any, ...]:
    """Return the model with the LoRA's name and strength folded into its name."""
    return (Handle("MODEL", f"{model.name}+{lora_name}@{strength_model}"),)


async def unet_loader(ctx: NodeContext, unet_name: str, weight_dtype: str) -> tuple[Any, ...]:
    """Return a model handle named after the file."""
    return (Handle("MODEL", unet_name),)


def _handle_of(kind: str) -> Callable[..., Any]:
    """Return a loader implementation giving one ``kind`` handle named after its only input."""
    async def load(ctx: NodeContext, **inputs: Any) -> tuple[Any, ...]:
        (name,) = inputs.values()
        return (Handle(kind, str(name)),)
    return load


MODEL_IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {
    "ImageOnlyCheckpointLoader": image_only_checkpoint_loader,
    "LoraLoader": lora_loader,
    "LoraLoaderModelOnly": lora_loader_model_only,
    "VAELoader": _handle_of("VAE"),
    "ControlNetLoader": _handle_of("CONTROL_NET"),
    "UNETLoader": unet_loader,
    "StyleModelLoader": _handle_of("STYLE_MODEL"),
    "GLIGENLoader": _handle_of("GLIGEN"),
}
