"""Progress folding from ComfyUI execution messages."""
from __future__ import annotations

from comfyq.events.progress import ProgressTracker
from tests.conftest import txt2img


def test_messages_fold_into_progress_and_public_events() -> None:
    tracker = ProgressTracker(txt2img())
    assert tracker.apply("execution_cached", {"nodes": ["4"]}) is None  # counted, told with the next event
    assert tracker.apply("status", {}) is None
    started = tracker.apply("executing", {"node": "3"})
    assert started["type"] == "progress" and started["node_type"] == "KSampler" and started["value"] == 0
    assert started["fraction"] == round(1 / 7, 4)  # the cached node
    event = tracker.apply("progress", {"value": 3, "max": 4, "node": "3"})
    assert event == {"type": "progress", "node": "3", "node_type": "KSampler", "label": "KSampler",
                     "value": 3, "max": 4, "fraction": round((1 + 3 / 4) / 7, 4), "nodes_done": 1,
                     "nodes_total": 7}
    tracker.apply("executing", {"node": "9"})
    done = tracker.apply("executed", {"node": "9", "output": {"images": [{"filename": "a.png"}]}})
    assert done == {"type": "output", "node": "9", "node_type": "SaveImage", "files": ["a.png"]}
    state = tracker.state
    assert state["nodes_done"] == 3 and state["nodes_total"] == 7
    assert state["partial_outputs"] == [{"node": "9", "filename": "a.png"}]
    assert tracker.apply("executing", {"node": None}) is None


def test_template_labels_name_the_nodes() -> None:
    tracker = ProgressTracker(txt2img(), {"3": "Sampling"})
    assert tracker.apply("executing", {"node": "3"})["label"] == "Sampling"
    assert tracker.apply("progress", {"value": 1, "max": 4})["label"] == "Sampling"
    assert tracker.apply("executing", {"node": "8"})["label"] == "VAEDecode"
    assert tracker.state["label"] == "VAEDecode"
