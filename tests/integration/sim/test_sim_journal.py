"""The simulator's ``--journal`` records queued, started, ended and free, across restarts."""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import requests

from comfyq.sim.process import SimProcess
from comfyq.sim.testing import txt2img, with_node_knobs
from tests.integration.conftest import wait_until


def post(sim: SimProcess, prompt: dict[str, Any]) -> str:
    """Queue a prompt; return its id."""
    response = requests.post(f"{sim.url}/prompt", json={"prompt": prompt}, timeout=5)
    assert response.status_code == 200, response.text
    return str(response.json()["prompt_id"])



def test_each_prompt_is_queued_started_and_ended_once(own_sim: SimProcess) -> None:
    ok = post(own_sim, txt2img(seed=1))
    failed = post(own_sim, with_node_knobs(txt2img(seed=2), "8", fail=True))
    wait_until(lambda: len(own_sim.journal_counts("ended")) == 2)
    expected = collections.Counter({ok: 1, failed: 1})
    assert own_sim.journal_counts("queued") == expected
    assert own_sim.journal_counts() == expected
    assert own_sim.journal_counts("ended") == expected
    lines = Path(own_sim.journal_path).read_text().splitlines()
    assert lines.index(f"started {ok}") < lines.index(f"ended {ok}") < lines.index(f"started {failed}")


def test_interrupted_prompt_ends(own_sim: SimProcess) -> None:
    stuck = post(own_sim, with_node_knobs(txt2img(seed=3, steps=200), "3", step_seconds=0.05))
    wait_until(lambda: own_sim.journal_counts()[stuck] == 1)
    requests.post(f"{own_sim.url}/interrupt", json={}, timeout=5)
    wait_until(lambda: own_sim.journal_counts("ended")[stuck] == 1)


def test_counts_survive_a_kill_and_a_crash(own_sim: SimProcess) -> None:
    before = post(own_sim, txt2img(seed=4))
    wait_until(lambda: own_sim.journal_counts("ended")[before] == 1)
    own_sim.kill()
    own_sim.start()
    # A prompt at which the simulator dies is started but never ended.
    doomed = post(own_sim, with_node_knobs(txt2img(seed=5), "3", die=True))
    assert own_sim.wait(5) == 3
    own_sim.start()
    after = post(own_sim, txt2img(seed=6))
    wait_until(lambda: own_sim.journal_counts("ended")[after] == 1)
    assert own_sim.journal_counts() == collections.Counter({before: 1, doomed: 1, after: 1})
    assert own_sim.journal_counts("ended") == collections.Counter({before: 1, after: 1})


def test_free_is_recorded(own_sim: SimProcess) -> None:
    assert own_sim.journal_counts("free") == collections.Counter()
    body = {"unload_models": True, "free_memory": True}
    assert requests.post(f"{own_sim.url}/free", json=body, timeout=5).status_code == 200
    assert requests.post(f"{own_sim.url}/api/free", json=body, timeout=5).status_code == 200
    assert own_sim.journal_counts("free") == collections.Counter({"-": 2})


def test_missing_journal_counts_nothing(tmp_path: Path) -> None:
    assert SimProcess(output_dir=str(tmp_path)).journal_counts("queued") == collections.Counter()
