"""The health watch decides healthy, unhealthy and stuck from what an instance answers."""
from __future__ import annotations

import requests
import redis

from comfyq.fleet import instances
from comfyq.comfy import ComfyClient
from comfyq.config.settings import Instance
from comfyq.worker.health import HealthMonitor
from comfyq.sim.process import SimProcess
from tests.conftest import txt2img
from tests.integration.conftest import wait_until


def test_healthy_then_unhealthy_after_failures_then_back(own_sim: SimProcess, rds: redis.Redis) -> None:
    seen: list[str] = []
    monitor = HealthMonitor(Instance("healthtest", own_sim.url), rds, interval=0.2, failures=2,
                            on_state=seen.append, catalogue_every=3600)
    try:
        assert monitor.check() == instances.HEALTHY
        status = rds.hgetall("comfyq:instance:healthtest")
        assert status[b"state"] == b"healthy" and status[b"websocket"] == b"1" and int(status[b"vram_free"]) > 0
        own_sim.freeze()
        assert monitor.check() == instances.HEALTHY  # one miss is not enough
        assert monitor.check() == instances.UNHEALTHY
        assert rds.hget("comfyq:instance:healthtest", "reachable") == b"0"
        own_sim.thaw()
        assert monitor.check() == instances.HEALTHY
        assert seen == ["healthy", "healthy", "unhealthy", "healthy"]
    finally:
        own_sim.thaw()
        monitor.stop()
        rds.delete("comfyq:instance:healthtest")


def test_stuck_while_the_prompt_stays_then_cleared(own_sim: SimProcess, rds: redis.Redis) -> None:
    monitor = HealthMonitor(Instance("stucktest", own_sim.url), rds, stuck_grace=0, catalogue_every=3600)
    with ComfyClient(own_sim.url) as client:
        graph = txt2img(seed=5, sim={"3": {"hang": True}})
        client.queue_prompt(graph, "hung-prompt")
        client.interrupt("hung-prompt")  # ignored by a hanging node
        try:
            instances.mark_stuck(rds, "stucktest", "hung-prompt")
            assert monitor.check() == instances.STUCK
            assert rds.hget("comfyq:instance:stucktest", "state") == b"stuck"
            requests.post(f"{own_sim.url}/sim/config", json={"release_hang": True}, timeout=5)
            wait_until(lambda: client.find_prompt("hung-prompt") == "done")
            assert monitor.check() == instances.HEALTHY
            assert instances.stuck(rds, "stucktest") is None
        finally:
            monitor.stop()
            rds.delete("comfyq:instance:stucktest", "comfyq:instance:stucktest:stuck")
