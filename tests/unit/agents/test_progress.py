"""A job's events as MCP progress: what each says, and a value that never goes back."""
from __future__ import annotations

from comfyq.agents.progress import ProgressTeller, describe
from comfyq.client import Event


def test_each_event_kind_is_described() -> None:
    assert describe(Event(None, "queued", {"status": "queued", "position": 3})) == "queued, position 3"
    assert describe(Event(None, "queued", {"status": "pending", "position": None})).startswith("pending")
    assert describe(Event("1", "started", {"instance": "gpu0"})) == "started on gpu0"
    step = {"node": "3", "node_type": "KSampler", "label": "Sampling", "value": 12, "max": 30,
            "nodes_done": 4, "nodes_total": 7, "fraction": 0.61}
    assert describe(Event("2", "progress", step)) == "Sampling step 12/30 (4/7 nodes)"
    assert describe(Event("3", "output", {"node": "9", "files": ["a.png"]})) is None
    assert describe(Event("4", "succeeded", {"outputs": []})) is None


def test_progress_only_grows_even_for_repeated_positions() -> None:
    seen: list[tuple[float, str]] = []
    teller = ProgressTeller(lambda percent, message: seen.append((percent, message)))
    teller.tell_job({"status": "queued", "queue_position": 2})
    teller.tell(Event(None, "queued", {"status": "queued", "position": 1}))
    teller.tell(Event("1", "started", {"instance": "gpu1"}))
    teller.tell(Event("2", "progress", {"node": "3", "value": 1, "max": 4, "fraction": 0.25}))
    teller.tell(Event("3", "output", {"node": "9"}))
    teller.tell(Event("4", "progress", {"node": "8", "fraction": 0.25}))  # a cached node: no step, same fraction
    values = [v for v, _ in seen]
    assert [m for _, m in seen][:3] == ["queued, position 2", "queued, position 1", "started on gpu1"]
    assert len(seen) == 5 and values == sorted(set(values)) and values[3] == 25.0 and values[-1] > 25.0
