"""The simulator declares every core model loader a real ComfyUI has, with empty folders, and runs them."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from comfyq.sim.catalogue import Env, object_info
from comfyq.sim.files import Folders
from comfyq.sim.knobs import Knobs, NodeKnobs
from comfyq.sim.nodes import IMPLEMENTATIONS
from comfyq.sim.prompt_checks import validate_prompt
from comfyq.sim.values import Handle, NodeContext

# What ComfyUI's editor (frontend 1.27) looks up as it builds its first combo widget, with each one's model input.
EDITOR_LOOKS_UP = {"CheckpointLoaderSimple": "ckpt_name", "ImageOnlyCheckpointLoader": "ckpt_name",
                   "LoraLoader": "lora_name", "LoraLoaderModelOnly": "lora_name", "VAELoader": "vae_name",
                   "ControlNetLoader": "control_net_name", "UNETLoader": "unet_name",
                   "UpscaleModelLoader": "model_name", "StyleModelLoader": "style_model_name",
                   "GLIGENLoader": "gligen_name"}


def run(class_type: str, **inputs: Any) -> Any:
    """Run one node's implementation outside a server."""
    async def progress(value: int, maximum: int, preview: Any) -> None:
        return None

    ctx = NodeContext("1", class_type, "p", {}, {}, NodeKnobs(), Folders.create(None), progress)
    return asyncio.run(IMPLEMENTATIONS[class_type](ctx, **inputs))


def test_every_loader_the_editor_looks_up_is_declared_with_its_model_input() -> None:
    info = object_info(Env(Folders.create(None), Knobs()))
    for name, model_input in EDITOR_LOOKS_UP.items():
        assert info[name]["name"] == name and "loaders" in info[name]["category"], name
        assert model_input in info[name]["input"]["required"], name
        assert model_input in info[name]["input_order"]["required"], name
        assert name in IMPLEMENTATIONS, name
    assert info["LoraLoader"]["output"] == ["MODEL", "CLIP"]
    assert info["LoraLoader"]["input"]["required"]["lora_name"][0] == []  # no LoRAs on a fresh install
    assert info["UNETLoader"]["input"]["required"]["weight_dtype"][0][0] == "default"


def test_a_lora_not_in_the_empty_folder_fails_validation_as_in_comfyui(tmp_path: Path) -> None:
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": Knobs().checkpoints[0]}},
             "2": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": "style.safetensors",
                                                                   "strength_model": 1.0}},
             "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
             "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "5": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "seed": 1, "steps": 2, "cfg": 7.0,
                                                        "sampler_name": "euler", "scheduler": "normal",
                                                        "positive": ["3", 0], "negative": ["3", 0],
                                                        "latent_image": ["4", 0], "denoise": 1.0}},
             "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
             "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "lora"}}}
    verdict = validate_prompt(graph, Env(Folders.create(str(tmp_path)), Knobs()))
    assert not verdict.ok and list(verdict.node_errors) == ["2"]
    (error,) = verdict.node_errors["2"]["errors"]
    assert error["type"] == "value_not_in_list" and error["extra_info"]["input_name"] == "lora_name"
    graph["5"]["inputs"]["model"] = ["1", 0]  # without the LoRA the same graph is fine
    assert validate_prompt(graph, Env(Folders.create(str(tmp_path)), Knobs())).ok


def test_loaders_give_handles_that_carry_what_was_applied() -> None:
    model, clip = run("LoraLoader", model=Handle("MODEL", "sd15"), clip=Handle("CLIP", "sd15"),
                      lora_name="x.safetensors", strength_model=0.5, strength_clip=1.0)
    assert model == Handle("MODEL", "sd15+x.safetensors@0.5") and clip == Handle("CLIP", "sd15+x.safetensors@1.0")
    assert run("VAELoader", vae_name="v.safetensors") == (Handle("VAE", "v.safetensors"),)
    assert run("GLIGENLoader", gligen_name="g.pth") == (Handle("GLIGEN", "g.pth"),)
    assert run("UNETLoader", unet_name="u.safetensors", weight_dtype="default") == (Handle("MODEL", "u.safetensors"),)
    assert [h.kind for h in run("ImageOnlyCheckpointLoader", ckpt_name="svd")] == ["MODEL", "CLIP_VISION", "VAE"]
