"""ComfyUI's HTTP API: prompts, queue, history, interrupts, catalogue, system facts.

Handlers parse bodies the way ComfyUI does, so a body that is not JSON (or a
prompt that is a string) raises and aiohttp answers with a plain-text 500.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import uuid

from aiohttp import web

from .catalogue import object_info
from .simulator import Simulator
from .prompt_checks import validate_prompt

SIM = web.AppKey("sim", Simulator)
COMFYUI_VERSION = "0.3.64"
SERVER_FEATURES = {"supports_preview_metadata": True, "max_upload_size": 100 * 1024 * 1024}
GIB = 1024**3

routes = web.RouteTableDef()


def _sim(request: web.Request) -> Simulator:
    return request.app[SIM]


@routes.post("/prompt")
async def post_prompt(request: web.Request) -> web.Response:
    """Validate and queue a prompt (ComfyUI's POST /prompt)."""
    sim = _sim(request)
    json_data = await request.json()
    if "number" in json_data:
        number = float(json_data["number"])
    else:
        number = sim.next_number(bool("front" in json_data and json_data["front"]))
    if "prompt" not in json_data:
        error = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                 "extra_info": {}}
        return web.json_response({"error": error, "node_errors": {}}, status=400)
    prompt = json_data["prompt"]
    prompt_id = str(json_data.get("prompt_id", uuid.uuid4()))
    verdict = validate_prompt(prompt, sim.env(), json_data.get("partial_execution_targets"))
    extra_data = json_data["extra_data"] if "extra_data" in json_data else {}
    if "client_id" in json_data:
        extra_data["client_id"] = json_data["client_id"]
    if not verdict.ok:
        return web.json_response({"error": verdict.error, "node_errors": verdict.node_errors}, status=400)
    sim.queue.put((number, prompt_id, prompt, extra_data, verdict.outputs))
    sim.journal.record("queued", prompt_id)
    return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": verdict.node_errors})


@routes.get("/prompt")
async def get_prompt(request: web.Request) -> web.Response:
    """Return how many prompts are running or pending."""
    return web.json_response(_sim(request).queue.queue_info())


@routes.get("/queue")
async def get_queue(request: web.Request) -> web.Response:
    """List the running and pending items."""
    running, pending = _sim(request).queue.snapshot()
    return web.json_response({"queue_running": [list(x) for x in running],
                              "queue_pending": [list(x) for x in pending]})


@routes.post("/queue")
async def post_queue(request: web.Request) -> web.Response:
    """Delete pending items by prompt id, or clear them all."""
    queue = _sim(request).queue
    json_data = await request.json()
    if "clear" in json_data and json_data["clear"]:
        queue.wipe()
    if "delete" in json_data:
        for prompt_id in json_data["delete"]:
            queue.delete(prompt_id)
    return web.Response(status=200)


@routes.post("/interrupt")
async def post_interrupt(request: web.Request) -> web.Response:
    """Interrupt whatever runs, or only the named prompt if it is the one running."""
    try:
        json_data = await request.json()
    except json.JSONDecodeError:
        json_data = {}
    _sim(request).executor.interrupt(json_data.get("prompt_id") or None)
    return web.Response(status=200)


@routes.post("/free")
async def post_free(request: web.Request) -> web.Response:
    """Flag memory to be freed between prompts."""
    sim = _sim(request)
    json_data = await request.json()
    sim.journal.record("free")
    for flag in ("unload_models", "free_memory"):
        if json_data.get(flag, False):
            sim.queue.set_flag(flag, json_data[flag])
    return web.Response(status=200)


@routes.get("/history")
async def get_history(request: web.Request) -> web.Response:
    """Return the newest history entries."""
    max_items = request.query.get("max_items")
    offset = request.query.get("offset")
    history = _sim(request).queue.get_history(
        max_items=int(max_items) if max_items is not None else None,
        offset=int(offset) if offset is not None else -1)
    return web.json_response(history)


@routes.get("/history/{prompt_id}")
async def get_history_item(request: web.Request) -> web.Response:
    """Return one prompt's history entry, or {} while running or unknown."""
    return web.json_response(_sim(request).queue.get_history(prompt_id=request.match_info["prompt_id"]))


@routes.post("/history")
async def post_history(request: web.Request) -> web.Response:
    """Delete history entries, or clear them all."""
    queue = _sim(request).queue
    json_data = await request.json()
    if "clear" in json_data and json_data["clear"]:
        queue.wipe_history()
    for prompt_id in json_data.get("delete", []):
        queue.delete_history(prompt_id)
    return web.Response(status=200)


@routes.get("/object_info")
async def get_object_info(request: web.Request) -> web.Response:
    """Return the node catalogue."""
    return web.json_response(object_info(_sim(request).env()))


@routes.get("/object_info/{node_class}")
async def get_object_info_node(request: web.Request) -> web.Response:
    """Return one node class of the catalogue."""
    return web.json_response(object_info(_sim(request).env(), request.match_info["node_class"]))


def _memory() -> tuple[int, int]:
    try:
        pages, free = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
        return pages * size, free * size
    except (ValueError, OSError, AttributeError):
        return 16 * GIB, 8 * GIB


@routes.get("/system_stats")
async def system_stats(request: web.Request) -> web.Response:
    """Return ComfyUI-shaped system and device facts."""
    ram_total, ram_free = _memory()
    return web.json_response({
        "system": {
            "os": os.name, "ram_total": ram_total, "ram_free": ram_free,
            "comfyui_version": COMFYUI_VERSION, "required_frontend_version": "1.27.10",
            "installed_templates_version": "0.1.91", "required_templates_version": "0.1.91",
            "python_version": sys.version, "pytorch_version": "2.8.0+cu128 (simulated)",
            "embedded_python": False, "argv": sys.argv, "platform": platform.platform(),
        },
        "devices": [{
            "name": "cuda:0 Simulated GPU (comfyq.sim) : cudaMallocAsync", "type": "cuda", "index": 0,
            "vram_total": 24 * GIB, "vram_free": 23 * GIB,
            "torch_vram_total": 24 * GIB, "torch_vram_free": 23 * GIB,
        }],
    })


@routes.get("/features")
async def get_features(request: web.Request) -> web.Response:
    """Return the server's feature flags."""
    return web.json_response(SERVER_FEATURES)


@routes.get("/embeddings")
async def get_embeddings(request: web.Request) -> web.Response:
    """Return the (empty) embedding list."""
    return web.json_response([])


@routes.get("/extensions")
async def get_extensions(request: web.Request) -> web.Response:
    """Return the (empty) frontend extension list."""
    return web.json_response([])


def _model_folders(sim: Simulator) -> dict[str, list[str]]:
    knobs = sim.knobs
    return {"checkpoints": list(knobs.checkpoints), "upscale_models": list(knobs.upscale_models),
            "loras": [], "vae": [], "embeddings": []}


@routes.get("/models")
async def list_model_types(request: web.Request) -> web.Response:
    """Return the model folder names."""
    return web.json_response(list(_model_folders(_sim(request))))


@routes.get("/models/{folder}")
async def get_models(request: web.Request) -> web.Response:
    """Return the files of one model folder."""
    folders = _model_folders(_sim(request))
    folder = request.match_info["folder"]
    if folder not in folders:
        return web.Response(status=404)
    return web.json_response(folders[folder])


def with_api_prefix(table: web.RouteTableDef) -> list[web.RouteDef]:
    """Return every route twice: as is and under ``/api``, as ComfyUI registers them."""
    out: list[web.RouteDef] = []
    for route in table:
        if isinstance(route, web.RouteDef):
            out.append(web.RouteDef(route.method, "/api" + route.path, route.handler, route.kwargs))
            out.append(route)
    return out
