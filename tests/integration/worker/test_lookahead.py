"""Lookahead: the next job's prompt waits on the instance while the running one executes, through real workers.

Each test owns a one-instance stack (tests/integration/chaos.py) whose users may
run several jobs at once: with the default per-user cap of one job per instance
a lone user never has a next job for the worker to hold.
"""
from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
import requests
from flask.testing import FlaskClient
from sqlalchemy import select

from comfyq import create_app
from comfyq.accounts import credits, limits, users as accounts
from comfyq.db.extensions import db
from comfyq.db.models import LedgerEntry
from comfyq.fleet import placements
from comfyq.worker import lookahead
from tests.conftest import txt2img
from tests.integration.chaos import ChaosStack, wait_until
from tests.integration.conftest import TERMINAL, with_key

LOOKAHEAD = {"COMFYQ_LOOKAHEAD": "2", "COMFYQ_MAX_RUNNING_PER_USER": "4"}


def slow(seed: int, seconds: float, **knobs: Any) -> dict[str, Any]:
    """Return a txt2img graph whose KSampler takes about ``seconds`` (more simulator ``knobs`` on it)."""
    return txt2img(seed=seed, steps=10, sim={"3": {"step_seconds": seconds / 10, **knobs}})


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ChaosStack]:
    marker = request.node.get_closest_marker("stack")
    options = {"names": ("gpu0",), "env": LOOKAHEAD, **(marker.kwargs if marker else {})}
    beat = options.pop("beat", False)
    chaos = ChaosStack(tmp_path, **options)
    try:
        yield chaos.start(beat=beat)
    finally:
        chaos.stop()


def queue_of(stack: ChaosStack) -> tuple[list[str], list[str]]:
    """Return the prompt ids the simulator runs and holds pending."""
    body = requests.get(f"{stack.sims['gpu0'].url}/queue", timeout=5).json()
    return [item[1] for item in body["queue_running"]], [item[1] for item in body["queue_pending"]]


def history(stack: ChaosStack, prompt_id: str) -> dict[str, float]:
    """Return a finished prompt's status messages: kind -> epoch seconds, as the simulator stamped them."""
    entry = requests.get(f"{stack.sims['gpu0'].url}/history/{prompt_id}", timeout=5).json()[prompt_id]
    return {kind: data["timestamp"] / 1000 for kind, data in entry["status"]["messages"] if "timestamp" in data}


def payer(stack: ChaosStack, soft_time_limit: float | None = None) -> tuple[FlaskClient, str]:
    """Return a client of a metered user with 100 credits and room for several jobs at once, and the user's id."""
    assert stack.client is not None and stack.app is not None
    app = stack.app if soft_time_limit is None else create_app({**stack.app.config,
                                                                "SOFT_TIME_LIMIT": soft_time_limit})
    with stack.app.app_context():
        user = accounts.create_user(f"payer{time.monotonic_ns()}", "user", "expert")
        credits.change(user, 100, "grant", "test credits", None)
        limits.set_limits(user, {"max_running": 4})
        return with_key(app.test_client(), accounts.issue_key(user)[1]), user.id


def ledger(stack: ChaosStack, job_id: str) -> list[tuple[str, int]]:
    """Return a job's ledger entries (kind, amount)."""
    assert stack.app is not None
    with stack.app.app_context():
        return sorted((e.kind, e.amount) for e in db.session.scalars(
            select(LedgerEntry).where(LedgerEntry.job_id == job_id)))


def submit(client: FlaskClient, workflow: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json={"workflow": workflow})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def seen(client: FlaskClient, job_id: str) -> dict[str, Any]:
    return client.get(f"/v1/jobs/{job_id}").get_json()


def ended(client: FlaskClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until a job of ``client``'s user ends; return it."""
    wait_until(lambda: seen(client, job_id)["status"] in TERMINAL, timeout=timeout)
    return seen(client, job_id)


def started_on_sim(stack: ChaosStack, job_id: str) -> None:
    wait_until(lambda: stack.sims["gpu0"].journal_counts("started")[job_id] >= 1, timeout=15)


def test_a_run_begins_by_consuming_its_workers_hand_back_and_reading_the_placement(rds: redis.Redis) -> None:
    job = f"job-{time.monotonic_ns()}"
    lookahead.note(rds, "gpuA", job)
    placements.place(rds, "gpuA", job)
    placements.hand_back(rds, "gpuA", job)
    assert lookahead.begin(rds, "gpuB", job) == (False, "gpuA")  # another worker's message for it still runs
    assert lookahead.begin(rds, "gpuA", job) == (True, "gpuA")  # this worker's own message is void, once
    assert lookahead.begin(rds, "gpuA", job) == (False, "gpuA") and lookahead.held(rds, "gpuA") == []
    placements.unplace(rds, "gpuA", job)


def test_a_listed_job_the_worker_no_longer_holds_goes_at_the_second_look(rds: redis.Redis) -> None:
    held, revoked = f"held-{time.monotonic_ns()}", f"revoked-{time.monotonic_ns()}"
    for job_id in (held, revoked):
        lookahead.note(rds, "gpuP", job_id)
    try:
        suspected = lookahead.prune(rds, "gpuP", {held}, set())
        assert suspected == {revoked} and lookahead.held(rds, "gpuP") == [held, revoked]  # maybe just received
        assert lookahead.prune(rds, "gpuP", {held}, suspected) == set()
        assert lookahead.held(rds, "gpuP") == [held]  # a peer's look no longer finds it busy
    finally:
        rds.delete(lookahead.KEY.format("gpuP"))


def test_the_next_prompt_waits_on_the_instance_before_the_running_one_ends(stack: ChaosStack) -> None:
    first = stack.submit(slow(1, 3.0))
    started_on_sim(stack, first)
    second = stack.submit(slow(2, 0.3))
    wait_until(lambda: second in queue_of(stack)[1], timeout=10)
    assert queue_of(stack)[0] == [first] and stack.job(first)["status"] == "running"
    held = stack.job(second)
    assert (held["status"], held["attempts"], held["started_at"]) == ("queued", 0, None)  # until its run claims it
    done = [stack.wait_status(job_id) for job_id in (first, second)]
    assert [(j["status"], j["attempts"]) for j in done] == [("succeeded", 1), ("succeeded", 1)]
    assert stack.started()[first] == 1 and stack.started()[second] == 1  # placed once, never posted again
    ran_first, ran_second = history(stack, first), history(stack, second)
    assert ran_second["execution_start"] - ran_first["execution_success"] < 0.1  # no round trip between them
    # The job's start is its prompt's own execution_start, not the moment it was placed.
    assert abs(datetime.fromisoformat(done[1]["started_at"]).timestamp() - ran_second["execution_start"]) < 0.01


def test_a_placed_job_cancelled_leaves_the_queue_unrun_and_is_refunded_once(stack: ChaosStack) -> None:
    client, _ = payer(stack)
    first = submit(client, slow(3, 3.0))
    started_on_sim(stack, first)
    second = submit(client, slow(4, 0.3))
    wait_until(lambda: second in queue_of(stack)[1], timeout=10)
    assert client.post(f"/v1/jobs/{second}/cancel").get_json()["status"] == "cancelled"
    wait_until(lambda: second not in queue_of(stack)[1], timeout=5)
    assert seen(client, first)["status"] == "running"  # withdrawn while the one ahead of it still ran
    assert ended(client, first)["status"] == "succeeded"
    third = submit(client, slow(5, 0.1))  # runs after the cancelled job's own task came and went
    assert ended(client, third)["status"] == "succeeded"
    assert seen(client, second)["status"] == "cancelled" and stack.started()[second] == 0
    assert ledger(stack, second) == [("debit", -1), ("refund", 1)]
    assert ledger(stack, first) == [("debit", -1)]


def test_a_failing_or_refused_placed_job_fails_cleanly_with_its_refund(stack: ChaosStack) -> None:
    client, _ = payer(stack)
    first = submit(client, slow(6, 2.0))
    started_on_sim(stack, first)
    failing = submit(client, slow(7, 0.2, fail="sampler exploded"))
    wait_until(lambda: failing in queue_of(stack)[1], timeout=10)
    failed = ended(client, failing)
    assert failed["status"] == "failed" and failed["error"]["type"] == "execution_failed", failed
    assert "sampler exploded" in failed["error"]["message"]
    again = submit(client, slow(8, 2.0))
    started_on_sim(stack, again)
    refused = submit(client, txt2img(seed=9, sim={"4": {"reject": "the checkpoint vanished"}}))
    refusal = ended(client, refused, timeout=10)
    assert refusal["status"] == "failed" and refusal["error"]["type"] == "prompt_rejected", refusal
    assert seen(client, again)["status"] == "running"  # refused as it was placed, behind the running one
    assert ended(client, first)["status"] == ended(client, again)["status"] == "succeeded"
    for job_id in (failing, refused):
        assert ledger(stack, job_id) == [("debit", -1), ("refund", 1)]


@pytest.mark.stack(beat=True, env={**LOOKAHEAD, "COMFYQ_TIME_LIMIT_GRACE": "3"})
def test_a_soft_limit_counts_from_the_prompts_own_execution_start(stack: ChaosStack) -> None:
    strict, _ = payer(stack, soft_time_limit=2.0)  # hard limit 5 s, which the wait behind the first passes
    first = stack.submit(slow(10, 7.0))
    started_on_sim(stack, first)
    behind = submit(strict, slow(11, 0.5))
    wait_until(lambda: behind in queue_of(stack)[1], timeout=10)
    done = ended(strict, behind, timeout=30)
    assert done["status"] == "succeeded", done  # waited 7 s placed, ran 0.5 s of its 2
    assert stack.wait_status(first)["status"] == "succeeded"
    # A placed prompt that runs past its limit is still stopped, counted from its own start.
    long_one = stack.submit(slow(12, 2.0))
    started_on_sim(stack, long_one)
    over = submit(strict, slow(13, 6.0))
    late = ended(strict, over, timeout=30)
    assert late["status"] == "timed_out", late
    ran = history(stack, over)
    assert 1.5 < ran["execution_interrupted"] - ran["execution_start"] < 4.0


@pytest.mark.stack(env={**LOOKAHEAD, "COMFYQ_LOOKAHEAD": "1"})
def test_a_lookahead_of_one_places_nothing_ahead(stack: ChaosStack) -> None:
    first = stack.submit(slow(14, 2.0))
    started_on_sim(stack, first)
    second = stack.submit(slow(15, 0.2))
    while stack.job(first)["status"] == "running":
        assert second not in queue_of(stack)[1] and stack.job(second)["status"] == "queued"
        time.sleep(0.05)
    done = [stack.wait_status(job_id) for job_id in (first, second)]
    assert [(j["status"], j["attempts"]) for j in done] == [("succeeded", 1), ("succeeded", 1)]


@pytest.mark.chaos
@pytest.mark.stack(beat=True)
def test_a_worker_killed_with_a_placed_prompt_runs_each_job_once(stack: ChaosStack) -> None:
    client, _ = payer(stack)
    first = submit(client, slow(16, 3.0))
    started_on_sim(stack, first)
    second = submit(client, slow(17, 0.5))
    wait_until(lambda: second in queue_of(stack)[1], timeout=10)
    stack.kill_worker("gpu0")
    stack.start_worker("gpu0")
    done = [ended(client, job_id) for job_id in (first, second)]
    assert [(j["status"], j["attempts"]) for j in done] == [("succeeded", 1), ("succeeded", 1)]
    assert all(len(j["outputs"]) == 1 for j in done)
    assert stack.started()[first] == 1 and stack.started()[second] == 1
    for job_id in (first, second):
        assert ledger(stack, job_id) == [("debit", -1)]


@pytest.mark.stack(env={**LOOKAHEAD, "COMFYQ_SOFT_TIME_LIMIT": "3", "COMFYQ_TIME_LIMIT_GRACE": "10"})
def test_a_placed_job_whose_instance_got_stuck_is_taken_back_unrun(stack: ChaosStack) -> None:
    hung = stack.submit(txt2img(seed=18, sim={"3": {"hang": True}}))
    started_on_sim(stack, hung)
    behind = stack.submit(slow(19, 0.2))
    wait_until(lambda: behind in queue_of(stack)[1], timeout=10)
    assert stack.wait_status(hung, timeout=30)["status"] == "timed_out"  # its node ignored the interrupt: stuck
    wait_until(lambda: behind not in queue_of(stack)[1], timeout=15)
    back = stack.job(behind)
    assert (back["status"], back["attempts"]) == ("queued", 0), back  # nothing ran: no attempt used
    requests.post(f"{stack.sims['gpu0'].url}/sim/config", json={"release_hang": True}, timeout=5)
    done = stack.wait_status(behind, timeout=30)
    assert done["status"] == "succeeded" and done["attempts"] == 1, done
    assert stack.started()[behind] == 1


def test_a_held_job_goes_back_to_the_queue_when_another_instance_idles(tmp_path: Path) -> None:
    chaos = ChaosStack(tmp_path, names=("gpu0", "gpu1"), env=LOOKAHEAD)
    try:
        chaos.start_redis()
        for name in chaos.names:
            chaos.start_sim(name)
        chaos.start_worker("gpu0")  # gpu1's worker comes later: until then gpu0 holds the next job
        first = chaos.submit(slow(20, 30.0))
        wait_until(lambda: chaos.sims["gpu0"].journal_counts("started")[first] >= 1, timeout=15)
        second = chaos.submit(slow(21, 0.3))
        wait_until(lambda: second in queue_of(chaos)[1], timeout=10)  # placed on gpu0, behind a 30 s prompt
        assert chaos.job(second)["status"] == "queued"
        chaos.start_worker("gpu1")  # idle, with nothing in the queue: gpu0 gives the held job back
        done = chaos.wait_status(second, timeout=30)
        assert (done["status"], done["instance"], done["attempts"]) == ("succeeded", "gpu1", 1), done
        assert chaos.job(first)["status"] == "running"  # it did not wait for the 30 s prompt ahead of it
        assert second not in queue_of(chaos)[1] and chaos.started()[second] == 1
        assert chaos.client.post(f"/v1/jobs/{first}/cancel").get_json()["status"] == "cancelled"
        assert chaos.wait_status(first)["status"] == "cancelled"
        # Its own message for the job came and was dropped, not run.
        wait_until(lambda: re.search(rf"{second}\] succeeded in [0-9.]+s: 'handed back'", chaos.log("gpu0")),
                   timeout=30)
    finally:
        chaos.stop()
