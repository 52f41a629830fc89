"""A ComfyUI simulator: a development tool and test double, not ComfyUI.

It speaks ComfyUI 0.3.64's HTTP and websocket protocol (routes, ``/api``
prefix, message order, error shapes, queue, history, interrupts, client-id
routing, caching) over real sockets, runs prompts one at a time, and writes
real PNG files, but its "models" are synthetic and its pictures are
deterministic colour blends. Knobs make it slow, fail, hang, crash, drop
websockets or freeze, so comfyq can be tested against every failure a real
instance shows. Start one with ``python -m comfyq.sim --port 8188`` or with
:class:`comfyq.sim.process.SimProcess`.
"""
from __future__ import annotations

from .knobs import Knobs
from .process import SimProcess, free_port

__all__ = ["Knobs", "SimProcess", "free_port", "serve"]


def serve(host: str, port: int, output_dir: str | None, knobs: Knobs, journal: str | None = None) -> None:
    """Run a simulator on host:port until SIGTERM or SIGINT (blocking); journal names its event log."""
    from .server import serve as run_server

    run_server(host, port, output_dir, knobs, journal)
