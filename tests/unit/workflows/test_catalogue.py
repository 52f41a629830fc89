"""The published catalogue: what validation needs of /object_info, small, and parsed once per cache period."""
from __future__ import annotations

import json
from typing import Any

import pytest

from comfyq.workflows import published as catalogue
from comfyq.templates import simulator_catalogue

INFO = json.loads(json.dumps(simulator_catalogue()))


def test_the_summary_keeps_what_validation_needs() -> None:
    parsed = catalogue.from_object_info(INFO)
    steps = parsed["KSampler"].inputs["steps"]
    assert (steps.kind, steps.required, steps.minimum, steps.maximum) == ("INT", True, 1, 10000)
    assert parsed["KSampler"].inputs["model"].kind == "MODEL"
    assert parsed["KSampler"].outputs == ("LATENT",) and not parsed["KSampler"].output_node
    assert parsed["SaveImage"].output_node and "prompt" not in parsed["SaveImage"].inputs  # hidden inputs
    sampler = parsed["KSampler"].inputs["sampler_name"]
    assert sampler.kind == "COMBO" and sampler.choices[0] == "euler" and sampler.offers("dpmpp_2m")
    assert not sampler.offers("warp_drive") and not sampler.offers({"unhashable": True})
    image = parsed["LoadImage"].inputs["image"]
    assert (image.kind, image.upload, image.choices) == ("COMBO", "image", ())


def test_the_summary_drops_text_and_stores_each_combo_list_once() -> None:
    info = json.loads(json.dumps(INFO))
    info["LoadImage"]["input"]["required"]["image"][0] = [f"{i:064x}.png" for i in range(1000)]  # staged inputs
    summary = catalogue.summarise(info)
    text = json.dumps(summary)
    assert "tooltip" not in text and "description" not in text and "The name of the checkpoint" not in text
    # Display names stay (short): a saved graph's conversion titles nodes with them, as the editor's export does.
    assert summary["classes"]["CheckpointLoaderSimple"]["display_name"] == "Load Checkpoint"
    assert "0" * 63 + "1.png" not in text  # an upload input's choices are the input folder: not needed, not kept
    scales = INFO["LatentUpscale"]["input"]["required"]["upscale_method"][0]
    assert summary["choices"].count(scales) == 1  # LatentUpscale and LatentUpscaleBy share it
    parsed = catalogue.parse(json.loads(text))
    assert parsed["LatentUpscale"].inputs["upscale_method"].choices is \
        parsed["LatentUpscaleBy"].inputs["upscale_method"].choices
    assert len(text) < len(json.dumps(INFO)) * 0.6


def test_odd_entries_are_skipped_not_fatal() -> None:
    parsed = catalogue.from_object_info({
        "Broken": {"input": {"required": {"a": [], "b": [None], "c": "INT", "d": ["INT", "not options"]}},
                   "output": None},
        "NotAClass": 5,
    })
    assert set(parsed) == {"Broken"} and set(parsed["Broken"].inputs) == {"d"}
    assert parsed["Broken"].outputs == () and parsed["Broken"].inputs["d"].minimum is None


class CountingRedis:
    """Just enough of a Redis client: one key, and how often it was read."""

    def __init__(self) -> None:
        self.store: dict[str, bytes] = {}
        self.reads = 0

    def set(self, key: str, value: str) -> None:
        self.store[key] = value.encode()

    def get(self, key: str) -> bytes | None:
        self.reads += 1
        return self.store.get(key)


def test_load_reads_once_per_period_and_parses_only_a_changed_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    r: Any = CountingRedis()
    now = [1000.0]
    monkeypatch.setattr(catalogue.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(catalogue, "_cache", {})
    assert catalogue.load(r, "gpu7", ttl=30) is None  # nothing published: no catalogue checks
    catalogue.publish(r, "gpu7", INFO)
    assert catalogue.load(r, "gpu7", ttl=30) is None and r.reads == 1  # cached for the period
    now[0] += 31
    first = catalogue.load(r, "gpu7", ttl=30)
    assert first is not None and "KSampler" in first and r.reads == 2
    now[0] += 31
    assert catalogue.load(r, "gpu7", ttl=30) is first and r.reads == 3  # read again, the same: not parsed again
    changed = json.loads(json.dumps(INFO))
    del changed["KSampler"]
    catalogue.publish(r, "gpu7", changed)
    now[0] += 31
    assert "KSampler" not in catalogue.load(r, "gpu7", ttl=30)
    assert list(r.store) == ["comfyq:catalogue:v3:gpu7", "comfyq:object_info:gpu7"]  # the editor's, whole
    assert json.loads(catalogue.object_info(r, ["gpu6", "gpu7"])) == changed
