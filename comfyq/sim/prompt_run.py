"""One prompt's execution: node order, caching, progress, knobs and the messages."""
from __future__ import annotations

import asyncio
import json
import time
import traceback
from typing import TYPE_CHECKING, Any

from PIL import Image

from . import images
from .cache import CacheEntry, signatures
from .catalogue import SPECS
from .knobs import NodeKnobs, caching_enabled, resolve, sim_dict
from .nodes import IMPLEMENTATIONS, NodeContext
from .recorded import run_generic
from .prompt_queue import QueueItem
from .prompt_checks import full_type_name

if TYPE_CHECKING:
    from .executor import Executor


class Interrupted(Exception):
    """Raised at an interrupt check once ``POST /interrupt`` was accepted."""


class SimulatedError(Exception):
    """The failure a ``fail`` knob injects; reported under the knob's fail_type."""


def _format(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return str(value)


class PromptRun:
    """Execute one queue item and build its history entry."""

    def __init__(self, executor: "Executor", item: QueueItem) -> None:
        self.ex = executor
        self.hub = executor.hub
        _number, self.prompt_id, self.prompt, self.extra_data, self.outputs = item
        self.client: str | None = self.extra_data.get("client_id")
        self.prompt_sim = sim_dict(self.extra_data)
        self.messages: list[list[Any]] = []
        self.states: dict[str, dict[str, Any]] = {}
        self.values: dict[str, tuple[Any, ...]] = {}
        self.ui: dict[str, dict[str, Any]] = {}
        self.executed: list[str] = []
        knobs = executor.knobs
        self.knobs = {
            node_id: resolve(knobs, self.prompt_sim, node_id, str(node.get("class_type")), sim_dict(node.get("_meta")))
            for node_id, node in self.prompt.items()
        }
        self.use_cache = caching_enabled(knobs, self.prompt_sim)
        self.signs: dict[str, str] = {}

    def send(self, event: str, data: dict[str, Any]) -> None:
        """Send an execution message to the submitting client only."""
        if self.client is not None:
            self.hub.send(event, data, self.client)

    def add_message(self, event: str, data: dict[str, Any]) -> None:
        """Send a message and keep it for the history's status.messages."""
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.messages.append([event, data])
        self.send(event, data)

    def progress_state(self) -> None:
        """Send every non-pending node's state, as ComfyUI's progress registry does."""
        nodes = {
            node_id: {"value": s["value"], "max": s["max"], "state": s["state"], "node_id": node_id,
                      "prompt_id": self.prompt_id, "display_node_id": node_id, "parent_node_id": None,
                      "real_node_id": node_id}
            for node_id, s in self.states.items()
        }
        self.send("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes})

    async def execute(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run the prompt; return (history result, history status)."""
        self.add_message("execution_start", {"prompt_id": self.prompt_id})
        volatile = {node_id for node_id, k in self.knobs.items() if k.disrupts}
        signs = self.signs = signatures(self.prompt, self.ex.folders, volatile,
                                        f"{self.prompt_id}:{time.monotonic_ns()}")
        cached: set[str] = set()
        if self.use_cache:
            self.ex.cache.keep_only(set(signs.values()))
            cached = {node_id for node_id in self.prompt if self.ex.cache.get(signs[node_id])}
        current_outputs = [node_id for node_id in self.prompt if node_id in cached]
        self.add_message("execution_cached", {"nodes": current_outputs, "prompt_id": self.prompt_id})

        success = True
        for node_id in self.order(cached):
            await self.ex.hub.thawed.wait()
            entry = self.ex.cache.get(signs[node_id]) if node_id in cached else None
            if entry is not None:
                self.replay(node_id, entry)
                continue
            if not await self.run_node(node_id, current_outputs):
                success = False
                break
            if self.use_cache and node_id not in volatile:
                self.ex.cache.put(signs[node_id], CacheEntry(self.values[node_id], self.ui.get(node_id)))
        if success:
            self.add_message("execution_success", {"prompt_id": self.prompt_id})
        for node_id in self.prompt:
            entry = self.ex.cache.get(signs.get(node_id)) if self.use_cache else None
            if node_id not in self.ui and entry is not None and entry.ui is not None:
                self.ui[node_id] = entry.ui
        meta = {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in self.ui}
        status = {"status_str": "success" if success else "error", "completed": success, "messages": self.messages}
        return {"outputs": dict(self.ui), "meta": meta}, status

    def order(self, cached: set[str]) -> list[str]:
        """Return the nodes to stage: each output after whatever uncached nodes feed it."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(node_id: str) -> None:
            if node_id in seen:
                return
            seen.add(node_id)
            for value in self.prompt[node_id].get("inputs", {}).values():
                if isinstance(value, list) and len(value) == 2 and value[0] not in cached:
                    visit(value[0])
            order.append(node_id)

        for output in self.outputs:
            visit(output)
        return order

    def replay(self, node_id: str, entry: CacheEntry) -> None:
        """Serve a cached node: replay its UI output, mark it finished."""
        self.values[node_id] = entry.outputs
        self.send("executed", {"node": node_id, "display_node": node_id,
                               "output": entry.ui, "prompt_id": self.prompt_id})
        if entry.ui is not None:
            self.ui[node_id] = entry.ui
        self.states[node_id] = {"state": "finished", "value": 1.0, "max": 1.0}
        self.progress_state()

    def gather(self, node_id: str) -> dict[str, Any]:
        """Collect a node's declared inputs: constants and upstream outputs."""
        node = self.prompt[node_id]
        types = SPECS[node["class_type"]].inputs(self.ex.env())
        declared = {**types.get("required", {}), **types.get("optional", {})}
        gathered = {}
        for name, value in node.get("inputs", {}).items():
            if name not in declared:
                continue
            if isinstance(value, list):
                gathered[name] = self.upstream(value[0])[value[1]]
            else:
                gathered[name] = value
        return gathered

    def upstream(self, node_id: str) -> tuple[Any, ...]:
        """Return a node's outputs, from this run or, for unstaged cached nodes, the cache."""
        if node_id not in self.values:
            entry = self.ex.cache.get(self.signs.get(node_id))
            if entry is None:
                raise RuntimeError(f"no output for node {node_id}")
            self.values[node_id] = entry.outputs
        return self.values[node_id]

    async def run_node(self, node_id: str, current_outputs: list[str]) -> bool:
        """Run one node; on failure send the error and return False."""
        class_type = self.prompt[node_id]["class_type"]
        knobs = self.knobs[node_id]
        if knobs.drop_ws and self.client is not None:
            self.hub.drop(self.client)
        self.states[node_id] = {"state": "running", "value": 0.0, "max": 1.0}
        self.progress_state()
        self.ex.last_node_id = node_id
        self.send("executing", {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id})
        if knobs.die:
            self.hub.crash(3)
            await asyncio.Event().wait()
        inputs: dict[str, Any] | None = None
        try:
            inputs = self.gather(node_id)
            self.ex.check_interrupt()
            if knobs.hang:
                await self.ex.wait_for_hang_release()
            if knobs.node_seconds > 0:
                await asyncio.sleep(knobs.node_seconds)
            if knobs.fail is not None:
                raise SimulatedError(knobs.fail)
            ctx = NodeContext(node_id, class_type, self.prompt_id, self.prompt, self.extra_data, knobs,
                              self.ex.folders, lambda v, m, p: self.progress(node_id, knobs, v, m, p))
            result = await IMPLEMENTATIONS.get(class_type, run_generic)(ctx, **inputs)
        except Interrupted:
            self.add_message("execution_interrupted", {"prompt_id": self.prompt_id, "node_id": node_id,
                                                       "node_type": class_type, "executed": list(self.executed)})
            return False
        except Exception as exc:
            kind = knobs.fail_type if isinstance(exc, SimulatedError) else full_type_name(exc)
            self.add_message("execution_error", {
                "prompt_id": self.prompt_id, "node_id": node_id, "node_type": class_type,
                "executed": list(self.executed),
                # ComfyUI appends an (empty) tips line to every exception message.
                "exception_message": f"{exc}\n", "exception_type": kind,
                "traceback": traceback.format_tb(exc.__traceback__),
                "current_inputs": {k: [_format(v)] for k, v in (inputs or {}).items()},
                "current_outputs": list(current_outputs),
            })
            return False
        self.finish(node_id, result)
        return True

    def finish(self, node_id: str, result: Any) -> None:
        """Record a node's result, send ``executed`` for UI outputs, mark it finished."""
        if isinstance(result, dict):
            ui, outputs = result.get("ui"), tuple(result.get("result", ()))
        else:
            ui, outputs = None, tuple(result)
        self.values[node_id] = outputs
        if ui:
            self.ui[node_id] = ui
            self.send("executed", {"node": node_id, "display_node": node_id, "output": ui,
                                   "prompt_id": self.prompt_id})
        state = self.states[node_id]
        state.update(state="finished", value=state["max"])
        self.executed.append(node_id)
        self.progress_state()

    async def progress(self, node_id: str, knobs: NodeKnobs, value: int, maximum: int,
                       preview: Image.Image | None) -> None:
        """A node's progress callback: take the step's time, honour interrupts, report."""
        if knobs.step_seconds > 0:
            await asyncio.sleep(knobs.step_seconds)
        await self.ex.hub.thawed.wait()
        self.ex.check_interrupt()
        self.states[node_id].update(value=float(value), max=float(maximum))
        if knobs.progress_state_per_step:
            self.progress_state()
        if preview is not None and self.client is not None and self.wants_metadata_previews():
            meta = {"node_id": node_id, "prompt_id": self.prompt_id, "display_node_id": node_id,
                    "parent_node_id": None, "real_node_id": node_id, "image_type": "image/jpeg"}
            self.hub.send_bytes(_with_metadata(preview, meta), self.client)
        self.send("progress", {"value": value, "max": maximum, "prompt_id": self.prompt_id, "node": node_id})
        if preview is not None and self.client is not None and not self.wants_metadata_previews():
            self.hub.send_bytes(images.preview_frame(preview), self.client)

    def wants_metadata_previews(self) -> bool:
        """Tell whether the client negotiated previews with metadata (binary event 4)."""
        flags = self.hub.feature_flags.get(self.client or "", {})
        return bool(flags.get("supports_preview_metadata"))


def _with_metadata(preview: Image.Image, meta: dict[str, Any]) -> bytes:
    blob = json.dumps(meta).encode()
    jpeg = images.encode(preview, "JPEG", 60)
    return (4).to_bytes(4, "big") + len(blob).to_bytes(4, "big") + blob + jpeg
