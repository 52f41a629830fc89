"""The aiohttp application: websocket, simulator control routes, start-up."""
from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import uuid
from typing import Awaitable, Callable

from aiohttp import WSMsgType, web

from . import file_routes, routes
from .files import Folders
from .journal import Journal
from .knobs import ACTIONS, KnobError, Knobs
from .routes import SIM, SERVER_FEATURES
from .simulator import Simulator

logger = logging.getLogger(__name__)
control = web.RouteTableDef()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def freeze_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Hold every ComfyUI request while frozen; the /sim/ control routes stay open."""
    if not request.path.startswith("/sim/"):
        await request.app[SIM].hub.thawed.wait()
    return await handler(request)


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    """Register a client, greet it with status and answer its feature flags."""
    sim = request.app[SIM]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    sid = request.query.get("clientId", "") or uuid.uuid4().hex
    sim.hub.register(sid, ws, request)
    try:
        sim.hub.send("status", {"status": sim.queue.queue_info(), "sid": sid}, sid)
        # ComfyUI re-announces the running node (without prompt_id) to its reconnecting client.
        if sim.executor.client_id == sid and sim.executor.last_node_id is not None:
            sim.hub.send("executing", {"node": sim.executor.last_node_id}, sid)
        first = True
        async for msg in ws:
            await sim.hub.thawed.wait()
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except json.JSONDecodeError:
                logger.warning("Invalid JSON received from client %s", sid)
                continue
            if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                sim.hub.feature_flags[sid] = data.get("data") or {}
                sim.hub.send("feature_flags", SERVER_FEATURES, sid)
            first = False
    finally:
        sim.hub.unregister(sid, ws)
    return ws


@control.get("/sim/config")
async def get_config(request: web.Request) -> web.Response:
    """Return the instance knobs."""
    return web.json_response(request.app[SIM].knobs.to_dict())


@control.post("/sim/config")
async def post_config(request: web.Request) -> web.Response:
    """Merge knobs into the instance; ``release_hang`` and ``freeze`` are actions."""
    sim = request.app[SIM]
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return web.json_response({"error": "body must be a JSON object"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "body must be a JSON object"}, status=400)
    try:
        sim.knobs = sim.knobs.merged({k: v for k, v in body.items() if k not in ACTIONS})
        seconds = body.get("freeze_seconds")
        if seconds is not None and not isinstance(seconds, (int, float)):
            raise KnobError("freeze_seconds must be a number")
    except KnobError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if body.get("release_hang"):
        sim.executor.release_hangs()
    if "freeze" in body or "freeze_seconds" in body:
        if body.get("freeze", True):
            sim.hub.freeze(float(seconds) if seconds is not None else None)
        else:
            sim.hub.thaw()
    return web.json_response(sim.knobs.to_dict())


@control.get("/sim/info")
async def get_info(request: web.Request) -> web.Response:
    """Return the simulator's folders and state."""
    sim = request.app[SIM]
    folders = sim.folders
    return web.json_response({
        "base_dir": folders.base, "input_dir": folders.input, "output_dir": folders.output,
        "temp_dir": folders.temp, "frozen": sim.hub.frozen, "clients": sorted(sim.hub.sockets),
    })


async def index(request: web.Request) -> web.Response:
    """Answer the root page."""
    return web.Response(text="<html><body><h1>comfyq ComfyUI simulator</h1></body></html>",
                        content_type="text/html")


async def _close_sockets(app: web.Application) -> None:
    for ws, _request in list(app[SIM].hub.sockets.values()):
        await ws.close(code=1001, message=b"Server shutdown")


def build_app(sim: Simulator) -> web.Application:
    """Return the aiohttp application serving one simulator."""
    app = web.Application(client_max_size=100 * 1024 * 1024, middlewares=[freeze_gate])
    app[SIM] = sim
    api = web.RouteTableDef()
    api.get("/ws")(websocket_handler)
    app.add_routes(routes.with_api_prefix(api))
    app.add_routes(routes.with_api_prefix(routes.routes))
    app.add_routes(routes.with_api_prefix(file_routes.routes))
    app.add_routes(control)
    app.router.add_get("/", index)
    app.on_shutdown.append(_close_sockets)
    return app


async def start(host: str, port: int, output_dir: str | None, knobs: Knobs,
                journal: str | None = None) -> tuple[web.AppRunner, Simulator, int]:
    """Bind the port and start the worker; return (runner, simulator, bound port)."""
    sim = Simulator(Folders.create(output_dir), knobs, Journal(journal))
    runner = web.AppRunner(build_app(sim), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001 - only way to learn port 0's pick
    bound = sockets[0].getsockname()[1] if sockets else port
    sim.start()
    return runner, sim, bound


async def _serve(host: str, port: int, output_dir: str | None, knobs: Knobs, journal: str | None) -> None:
    if knobs.start_delay > 0:
        await asyncio.sleep(knobs.start_delay)
    runner, sim, bound = await start(host, port, output_dir, knobs, journal)
    print(f"comfyq-sim listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()
        await runner.cleanup()
        sim.folders.cleanup()


def serve(host: str, port: int, output_dir: str | None, knobs: Knobs, journal: str | None = None) -> None:
    """Run a simulator until SIGTERM or SIGINT (blocking); journal names its event log, if any."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(host, port, output_dir, knobs, journal))
