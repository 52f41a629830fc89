"""What the editor reads to start: the node catalogue, models, system stats, features; never an instance itself.

The node catalogue is the whole ``/object_info`` a healthy instance's worker
last published (``workflows.published``); model folders are read from the
loaders' choice lists in it. comfyq serves no custom-node JavaScript, so the
extension list is empty.
"""
from __future__ import annotations

import json
import platform
from typing import Any

from flask import Blueprint, Response, current_app
from redis.exceptions import RedisError

from ..db.extensions import get_redis
from ..errors import NotFound, Unavailable
from ..fleet import instances
from ..workflows import published
from .auth import require_student

bp = Blueprint("comfy_catalogue", __name__)
bp.before_request(require_student)
# Which loader input lists each model folder (ComfyUI's folder names).
FOLDERS = {"checkpoints": ("CheckpointLoaderSimple", "ckpt_name"), "loras": ("LoraLoader", "lora_name"),
           "vae": ("VAELoader", "vae_name"), "upscale_models": ("UpscaleModelLoader", "model_name"),
           "controlnet": ("ControlNetLoader", "control_net_name"), "clip": ("CLIPLoader", "clip_name"),
           "unet": ("UNETLoader", "unet_name"), "embeddings": ("", "")}


def object_info_json() -> bytes:
    """Return the published ``/object_info`` of a healthy instance (any instance's when none is healthy)."""
    try:
        r = get_redis()
        rows = instances.describe(r, current_app.config["INSTANCES"])["instances"]
        ordered = sorted(rows, key=lambda row: (row["state"] != instances.HEALTHY, row["name"]))
        found = published.object_info(r, [row["name"] for row in ordered])
    except RedisError as exc:
        raise Unavailable(f"Redis is unreachable ({exc}); reload the editor in a moment") from exc
    if found is None:
        raise Unavailable("no instance has published its node catalogue yet; reload the editor in a moment")
    return found


def models_in(folder: str) -> list[str]:
    """Return the model files of ``folder``, as its loader's choice list in the catalogue names them."""
    class_type, input_name = FOLDERS[folder]
    node = json.loads(object_info_json()).get(class_type) or {}
    for section in ("required", "optional"):
        declared = ((node.get("input") or {}).get(section) or {}).get(input_name)
        if isinstance(declared, list) and declared:
            options = declared[0] if isinstance(declared[0], list) else (
                (declared[1] or {}).get("options") if len(declared) > 1 and isinstance(declared[1], dict) else None)
            return [o for o in options or [] if isinstance(o, str)]
    return []


@bp.route("/object_info")
def object_info() -> Response:
    """Answer the node catalogue, as ComfyUI's ``/object_info``."""
    return Response(object_info_json(), mimetype="application/json")


@bp.route("/object_info/<node_class>")
def object_info_of(node_class: str) -> dict[str, Any]:
    """Answer one node class's entry, ``{class: {...}}``; 404 for a class no instance offers."""
    found = json.loads(object_info_json()).get(node_class)
    if found is None:
        raise NotFound(f"no node class {node_class!r}")
    return {node_class: found}


@bp.route("/system_stats")
def system_stats() -> dict[str, Any]:
    """Answer ComfyUI's system stats, describing comfyq's queue rather than any one machine."""
    try:
        rows = instances.describe(get_redis(), current_app.config["INSTANCES"])["instances"]
    except RedisError:
        rows = []
    version = next((row["version"] for row in rows if row.get("version")), None) or "0.3.64"
    return {"system": {"os": platform.system().lower(), "python_version": platform.python_version(),
                       "embedded_python": False, "comfyui_version": version, "pytorch_version": "",
                       "argv": ["comfyq"], "ram_total": 0, "ram_free": 0},
            "devices": [{"name": f"comfyq queue ({len(rows)} instance(s))", "type": "cuda", "index": 0,
                         "vram_total": 0, "vram_free": 0, "torch_vram_total": 0, "torch_vram_free": 0}]}


@bp.route("/embeddings")
def embeddings() -> list[str]:
    """Answer the textual-inversion embeddings (none are listed)."""
    return []


@bp.route("/extensions")
def extensions() -> list[str]:
    """Answer the extension scripts to load: none, comfyq serves no custom-node JavaScript."""
    return []


@bp.route("/features")
def features() -> dict[str, Any]:
    """Answer the server's feature flags."""
    return {"supports_preview_metadata": False, "max_upload_size": int(current_app.config["MAX_UPLOAD_BYTES"])}


@bp.route("/i18n")
def i18n() -> dict[str, Any]:
    """Answer the custom nodes' translations (none)."""
    return {}


@bp.route("/models")
def model_folders() -> list[str]:
    """Answer the model folder names."""
    return list(FOLDERS)


@bp.route("/models/<folder>")
def models(folder: str) -> list[str]:
    """Answer the files of one model folder; 404 for an unknown folder."""
    if folder not in FOLDERS:
        raise NotFound(f"no model folder {folder!r}")
    return models_in(folder) if FOLDERS[folder][0] else []


@bp.route("/experiment/models")
def experiment_models() -> list[dict[str, Any]]:
    """Answer the model folders as the model library reads them."""
    return [{"name": name, "folders": [f"models/{name}"]} for name in FOLDERS]


@bp.route("/experiment/models/<folder>")
def experiment_models_in(folder: str) -> list[dict[str, Any]]:
    """Answer one folder's files as the model library reads them."""
    return [{"name": name, "pathIndex": 0} for name in models(folder)]


@bp.route("/internal/folder_paths")
def folder_paths() -> dict[str, Any]:
    """Answer where each model folder lives (names only: no path of any machine is shown)."""
    return {name: [[f"models/{name}"], [".safetensors", ".ckpt", ".pt", ".pth", ".bin"]] for name in FOLDERS}


@bp.route("/workflow_templates")
def workflow_templates() -> dict[str, Any]:
    """Answer the custom nodes' workflow templates (none)."""
    return {}


@bp.route("/global_subgraphs")
def global_subgraphs() -> dict[str, Any]:
    """Answer the shared subgraph blueprints (none)."""
    return {}


@bp.route("/internal/logs")
def logs() -> str:
    """Answer the server log: comfyq shows none to students."""
    return ""


@bp.route("/internal/logs/raw")
def raw_logs() -> dict[str, Any]:
    """Answer the server log's raw entries (none) as the editor's terminal panel reads them."""
    return {"entries": [], "size": {"cols": 80, "rows": 24}}


@bp.route("/internal/logs/subscribe", methods=["PATCH"])
def subscribe_logs() -> Response:
    """Accept a subscription to log lines; none are ever sent."""
    return Response(status=200)
