"""Overhead per job: the same trivial workflow straight on a simulator vs through comfyq.

Direct (the baseline): POST /prompt on an open websocket, wait for `executing null`,
read /history, download the image through /view. Through comfyq: POST /v1/jobs,
wait for the job's `finished` event (which names its outputs), download the output. Runs
alternate so both see the same machine state. Usage: python bench/overhead.py [N]
"""
from __future__ import annotations

import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import service_key, stack, summary  # noqa: E402
from comfyq.comfy import ComfyClient  # noqa: E402
from comfyq.events.log import CHANNELS, FINAL_TYPES, parse  # noqa: E402

WORKFLOW = {
    "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "3": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["2", 2]}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "bench"}},
}


def unique(seed: int) -> dict:
    """Return the workflow with a different prefix, so no run is a cache hit."""
    graph = json.loads(json.dumps(WORKFLOW))
    graph["4"]["inputs"]["filename_prefix"] = f"bench{seed}"
    return graph


def direct(client: ComfyClient, seed: int) -> float:
    """Run once straight on the simulator; return the seconds taken."""
    start = time.perf_counter()
    prompt_id = str(uuid.uuid4())
    client.queue_prompt(unique(seed), prompt_id)
    entry = client.follow(prompt_id)
    image = entry["outputs"]["4"]["images"][0]
    client.download(image["filename"], image["subfolder"], image["type"])
    return time.perf_counter() - start


def through_comfyq(http: requests.Session, api: str, events: redis.client.PubSub, seed: int) -> float:
    """Run once through the API and a worker; return the seconds taken."""
    start = time.perf_counter()
    job = http.post(f"{api}/v1/jobs", json={"workflow": unique(seed)}, timeout=10).json()
    while True:
        message = events.get_message(timeout=10)
        if message is None:
            raise RuntimeError(f"no finished event for {job['id']}")
        if message["type"] == "pmessage":
            event = json.loads(parse(message["data"])[2])
            if event["job_id"] == job["id"] and event["type"] in FINAL_TYPES:
                break
    assert event["type"] == "succeeded", event
    http.get(f"{api}/v1/jobs/{job['id']}/outputs/{event['outputs'][0]['name']}", timeout=10).raise_for_status()
    return time.perf_counter() - start


def main(n: int = 200) -> None:
    """Measure and print both distributions and their difference."""
    with stack(sims=1) as running:
        sim_url = running.env["COMFYQ_INSTANCES"].split("=", 1)[1]
        api = f"http://127.0.0.1:{running.api_port}"
        client = ComfyClient(sim_url)
        client.connect()
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {service_key(running)}"
        events = redis.Redis.from_url(running.env["COMFYQ_REDIS_URL"]).pubsub()
        events.psubscribe(CHANNELS)
        for i in range(10):  # warm up both paths
            direct(client, -i - 1)
            through_comfyq(http, api, events, -i - 100)
        base, ours = [], []
        for i in range(n):
            base.append(direct(client, i))
            ours.append(through_comfyq(http, api, events, n + i))
        client.close()
    extra = [b - a for a, b in zip(base, ours)]
    print(f"overhead bench, N={n}, trivial workflow (4 nodes, one 64x64 PNG), runs alternating")
    print(f"  direct on the simulator (baseline): {summary(base)}")
    print(f"  through comfyq:                     {summary(ours)}")
    print(f"  ratio comfyq/direct:                median {statistics.median(ours) / statistics.median(base):.2f}x")
    print(f"  comfyq minus direct, per run:       {summary(extra)}  (target: median <= 25 ms)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
