"""Knob layering: instance < prompt < node."""
from __future__ import annotations

import pytest

from comfyq.sim.knobs import KnobError, Knobs, resolve


def test_defaults_are_fast_and_harmless() -> None:
    knobs = resolve(Knobs(), {}, "3", "KSampler", {})
    assert knobs.step_seconds == 0 and knobs.node_seconds == 0
    assert knobs.fail is None and not knobs.hang and not knobs.die and not knobs.drop_ws
    assert not knobs.disrupts


def test_node_beats_prompt_beats_instance() -> None:
    instance = Knobs(step_seconds=1.0, node_seconds=0.5)
    knobs = resolve(instance, {"step_seconds": 0.1}, "3", "KSampler", {"step_seconds": 0.01})
    assert knobs.step_seconds == 0.01 and knobs.node_seconds == 0.5


def test_at_knobs_match_node_id_class_type_or_list() -> None:
    assert resolve(Knobs(fail_at="3"), {}, "3", "KSampler", {}).fail
    assert resolve(Knobs(), {"hang_at": "KSampler"}, "3", "KSampler", {}).hang
    assert resolve(Knobs(), {"die_at": ["1", "3"]}, "3", "KSampler", {}).die
    assert not resolve(Knobs(), {"drop_ws_at": "8"}, "3", "KSampler", {}).drop_ws


def test_fail_message_sources() -> None:
    assert resolve(Knobs(), {}, "3", "KSampler", {"fail": "boom"}).fail == "boom"
    assert resolve(Knobs(), {"fail_at": "3", "fail_message": "oom"}, "3", "KSampler", {}).fail == "oom"
    default = resolve(Knobs(), {}, "3", "KSampler", {"fail": True}).fail
    assert default is not None and "KSampler" in default


def test_node_only_knobs_are_ignored_at_prompt_level() -> None:
    assert resolve(Knobs(), {"fail": True, "hang": True}, "3", "KSampler", {}).fail is None


def test_merge_validates_names_and_types() -> None:
    assert Knobs().merged({"step_seconds": "0.5"}).step_seconds == 0.5
    with pytest.raises(KnobError):
        Knobs().merged({"nope": 1})
    with pytest.raises(KnobError):
        Knobs().merged({"node_seconds": "slow"})
    with pytest.raises(KnobError):
        Knobs().merged({"checkpoints": "one.safetensors"})
