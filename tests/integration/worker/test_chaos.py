"""Chaos: kill, hang, stop and restart parts of a real stack; no job is lost, run twice or left running.

Each test owns its stack (tests/integration/chaos.py) and asserts final job
states, how often each simulator started each prompt (their journals survive
kills), and that no process is left behind. Recovery times are printed as
``CHAOS <scenario> <seconds>`` for the README table (``pytest -m chaos -s``).
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Iterator

import psutil
import pytest
import requests

from tests.conftest import txt2img
from tests.integration.chaos import ChaosStack, wait_until

pytestmark = pytest.mark.chaos


def slow(seed: int, seconds: float) -> dict:
    """Return a txt2img graph whose KSampler takes about ``seconds``."""
    return txt2img(seed=seed, steps=10, sim={"3": {"step_seconds": seconds / 10}})


def report(scenario: str, seconds: float) -> None:
    print(f"\nCHAOS {scenario} {seconds:.2f}")


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ChaosStack]:
    marker = request.node.get_closest_marker("stack")
    options = dict(marker.kwargs) if marker else {}
    beat = options.pop("beat", False)
    chaos = ChaosStack(tmp_path, **options)
    try:
        yield chaos.start(beat=beat)
    finally:
        chaos.stop()


def test_kill_worker_child_mid_job_ten_times(stack: ChaosStack) -> None:
    ids, recovered = [], []
    for trial in range(10):
        job_id = stack.submit(slow(100 + trial, 1.5))
        running = stack.wait_status(job_id, {"running"}, timeout=30)
        time.sleep(0.3)
        stack.worker_child(running["instance"]).kill()
        killed = time.monotonic()
        done = stack.wait_status(job_id, timeout=60)
        recovered.append(time.monotonic() - killed)
        assert done["status"] == "succeeded", done
        assert len(done["outputs"]) == 1 and done["attempts"] == 1  # followed again, never claimed anew
        ids.append(job_id)
    started = stack.started()
    assert {job_id: started[job_id] for job_id in ids} == {job_id: 1 for job_id in ids}
    report("child_kill_max", max(recovered))


def test_a_job_longer_than_the_visibility_timeout_is_never_handed_out_twice(stack: ChaosStack) -> None:
    job_id, _, other = stack.running(slow(150, 20.0))  # visibility timeout 8 s, scans every 2 s
    worker = stack.job(job_id)["worker"]
    broker = stack.redis
    while (job := stack.job(job_id))["status"] == "running":
        waiting = sum(broker.llen(q) for q in ("comfy", "comfy.gpu0", "comfy.gpu1"))
        renewed = [time.time() - score for _, score in broker.zrange("unacked_index", 0, -1, withscores=True)]
        assert waiting == 0 and len(renewed) == 1 and renewed[0] < 3, (waiting, renewed)
        time.sleep(0.5)
    assert job["status"] == "succeeded" and job["attempts"] == 1 and job["worker"] == worker
    assert job_id not in stack.log(other)  # the other worker never received it
    assert stack.started()[job_id] == 1


def test_kill_whole_worker_mid_job_completes_on_the_other(stack: ChaosStack) -> None:
    job_id, victim, other = stack.running(slow(200, 4.0))
    time.sleep(0.5)
    stack.kill_worker(victim)
    killed = time.monotonic()
    done = stack.wait_status(job_id, timeout=30)
    took = time.monotonic() - killed
    assert done["status"] == "succeeded", done
    assert done["worker"].startswith(f"{other}@"), done  # taken over by the live worker
    assert took <= 15, took
    assert stack.started()[job_id] == 1  # followed where it ran, never submitted again
    report("worker_kill", took)


def test_simulator_killed_mid_job(stack: ChaosStack) -> None:
    first, victim, survivor = stack.running(slow(300, 6.0))
    time.sleep(0.5)
    stack.sims[victim].kill()
    killed = time.monotonic()
    rest = [stack.submit(slow(310 + i, 0.3)) for i in range(4)]
    closed = wait_until(lambda: stack.redis.hget(f"comfyq:instance:{victim}", "intake") == b"closed", timeout=10)
    assert "comfy" not in stack.consumes(victim) and "comfy" in stack.consumes(survivor)
    assert closed <= 5, closed
    done = [stack.wait_status(job_id, timeout=60) for job_id in [first, *rest]]
    assert [j["status"] for j in done] == ["succeeded"] * 5, done
    assert {j["instance"] for j in done} == {survivor}
    assert done[0]["attempts"] == 2 and done[0]["error"] is None
    started = stack.started()
    assert started[first] == 2 and all(started[job_id] == 1 for job_id in rest)
    assert stack.sims[victim].journal_counts("started")[first] == 1  # once on each instance
    report("sim_kill_intake_closed", closed)
    report("sim_kill_job_done", time.monotonic() - killed)


@pytest.mark.stack(env={"COMFYQ_SOFT_TIME_LIMIT": "3", "COMFYQ_TIME_LIMIT_GRACE": "4", "COMFYQ_INTERRUPT_GRACE": "1"})
def test_hard_limit_kills_a_frozen_child_and_the_job_still_ends_once(stack: ChaosStack) -> None:
    job_id, victim, _ = stack.running(txt2img(seed=800, steps=10, sim={"3": {"step_seconds": 3.0}}))
    child = stack.worker_child(victim)
    child.suspend()  # it cannot act on its soft limit; only the hard limit's kill ends it
    began = time.monotonic()
    done = stack.wait_status(job_id, timeout=30)
    ended = time.monotonic() - began
    assert done["status"] == "timed_out" and "hard time limit" in done["error"]["message"], done
    # billiard sends SIGTERM, then SIGKILL to a child that does not go.
    wait_until(lambda: not psutil.pid_exists(child.pid) or child.status() == psutil.STATUS_ZOMBIE, timeout=15)
    sim = stack.sims[victim]
    wait_until(lambda: sim.journal_counts("ended")[job_id] == 1, timeout=10)  # interrupted by the handler
    assert sim.journal_counts("started")[job_id] == 1
    # The instance is free again: the worker takes shared work and runs the next job there.
    wait_until(lambda: stack.redis.hget(f"comfyq:instance:{victim}", "intake") == b"open", timeout=10)
    following = stack.submit(txt2img(seed=801), instance=victim)
    assert stack.wait_status(following, timeout=30)["status"] == "succeeded"
    report("hard_limit_job_ended", ended)


@pytest.mark.stack(names=("gpu0",), supervised=("gpu0",),
                   env={"COMFYQ_SOFT_TIME_LIMIT": "3", "COMFYQ_TIME_LIMIT_GRACE": "10"})
def test_hanging_node_frees_the_slot_by_restarting_comfyui(stack: ChaosStack) -> None:
    old_pid = int(stack.redis.hget("comfyq:instance:gpu0", "comfyui_pid"))
    hung = stack.submit(txt2img(seed=400, sim={"3": {"hang": True}}))
    began = time.monotonic()
    stack.wait_status(hung, {"running"}, timeout=30)
    following = stack.submit(slow(401, 0.5))
    done = stack.wait_status(hung, timeout=30)
    assert done["status"] == "timed_out" and "ignored the interrupt" in done["error"]["message"], done
    stack.wait_status(following, {"running", "succeeded"}, timeout=30)
    freed = time.monotonic() - began
    assert freed <= 3 + 2 + 5, freed  # soft limit + interrupt grace + 5 s
    assert stack.wait_status(following)["status"] == "succeeded"
    status = stack.redis.hgetall("comfyq:instance:gpu0")
    assert int(status[b"comfyui_pid"]) != old_pid and status[b"comfyui_restarts"] == b"1"
    assert stack.started() == {hung: 1, following: 1}
    report("hang_supervised_next_job_running", freed)


@pytest.mark.stack(env={"COMFYQ_SOFT_TIME_LIMIT": "3", "COMFYQ_TIME_LIMIT_GRACE": "10"})
def test_hanging_node_marks_an_unsupervised_instance_stuck(stack: ChaosStack) -> None:
    hung = stack.submit(txt2img(seed=500, sim={"3": {"hang": True}}), instance="gpu0")
    stack.wait_status(hung, {"running"}, timeout=30)
    began = time.monotonic()
    assert stack.wait_status(hung, timeout=30)["status"] == "timed_out"
    wait_until(lambda: stack.redis.hget("comfyq:instance:gpu0", "state") == b"stuck", timeout=5)
    rows = {r["name"]: r for r in stack.client.get("/v1/instances").get_json()["instances"]}
    assert rows["gpu0"]["stuck_job"] == hung and rows["gpu0"]["intake"] == "closed"
    others = [stack.submit(slow(510 + i, 0.2)) for i in range(3)]
    assert {stack.wait_status(j)["instance"] for j in others} == {"gpu1"}
    report("hang_unsupervised_stuck_marked", time.monotonic() - began)
    shown = stack.stats("gpu0")["comfyq"]  # in Flower's worker page, and without the shared queues
    assert shown["state"] == "stuck" and shown["intake"] == "closed" and "comfy" not in stack.consumes("gpu0")
    requests.post(f"{stack.sims['gpu0'].url}/sim/config", json={"release_hang": True}, timeout=5)
    wait_until(lambda: stack.redis.hget("comfyq:instance:gpu0", "intake") == b"open", timeout=10)
    assert stack.stats("gpu0")["comfyq"]["state"] == "healthy" and "comfy" in stack.consumes("gpu0")
    assert stack.wait_status(stack.submit(slow(520, 0.2), instance="gpu0"))["status"] == "succeeded"


# Eight admitted at once (no fair-share cap): each worker holds its running job and the next
# (COMFYQ_LOOKAHEAD=2, both "running"), so four wait in the broker when it loses everything.
@pytest.mark.stack(beat=True, env={"COMFYQ_MAX_RUNNING_PER_USER": "8", "COMFYQ_MAX_ADMITTED": "8"})
def test_redis_restart_loses_queued_jobs_and_the_reconciler_requeues_them(stack: ChaosStack) -> None:
    ids = [stack.submit(slow(600 + i, 2.0)) for i in range(10)]
    wait_until(lambda: sum(stack.job(j)["status"] == "running" for j in ids) >= 2, timeout=30)
    stack.redis_proc.kill()  # type: ignore[union-attr]
    stack.redis_proc.wait(5)  # type: ignore[union-attr]
    stack.start_redis()  # empty: persistence is off
    restarted = time.monotonic()
    done = [stack.wait_status(job_id, timeout=90) for job_id in ids]
    assert [j["status"] for j in done] == ["succeeded"] * 10, done
    started = stack.started()
    assert {job_id: started[job_id] for job_id in ids} == {job_id: 1 for job_id in ids}
    assert "enqueued it again" in (stack.tmp / "beat.log").read_text()
    report("redis_restart_all_done", time.monotonic() - restarted)


@pytest.mark.stack(env={"COMFYQ_DRAIN_TIMEOUT": "3"})
def test_sigterm_drains_a_short_job_and_hands_a_long_one_back(stack: ChaosStack) -> None:
    short = stack.submit(slow(700, 1.5), instance="gpu0")
    stack.wait_status(short, {"running"}, timeout=30)
    os.killpg(stack.workers["gpu0"].pid, signal.SIGTERM)
    assert stack.wait_status(short, timeout=30)["status"] == "succeeded"
    assert stack.workers["gpu0"].wait(30) == 0
    stack.start_worker("gpu0")
    long, victim, other = stack.running(slow(701, 8.0))
    stack.workers[victim].send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    done = stack.wait_status(long, timeout=60)
    assert done["status"] == "succeeded" and done["worker"].startswith(f"{other}@"), done
    stack.workers[victim].wait(30)
    assert stack.started()[long] == 1 and stack.started()[short] == 1
    report("sigterm_long_job_done", time.monotonic() - signalled)
