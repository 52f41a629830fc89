"""The node policy for raw workflows."""
from __future__ import annotations

import pytest

from comfyq.config.settings import DEFAULT_BLOCKLIST, Config
from comfyq.workflows.safety import NodeRefused, check_nodes
from tests.conftest import txt2img


def test_blocked_nodes_are_named() -> None:
    graph = txt2img()
    graph["20"] = {"class_type": "ExecutePython", "inputs": {}}
    graph["21"] = {"class_type": "Save Text File", "inputs": {}}
    with pytest.raises(NodeRefused) as info:
        check_nodes(graph, frozenset(DEFAULT_BLOCKLIST), frozenset())
    assert info.value.message == ("node 20: class_type 'ExecutePython' is blocked here: it can run code or "
                                  "write files (and 1 more node(s))")
    assert set(info.value.errors["workflow"]) == {"20", "21"}


def test_allowlist_narrows_and_default_graph_passes() -> None:
    check_nodes(txt2img(), frozenset(DEFAULT_BLOCKLIST), frozenset())
    allowed = frozenset({"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode"})
    with pytest.raises(NodeRefused, match="node 9: class_type 'SaveImage' is not on this deployment's node allowlist"):
        check_nodes(txt2img(), frozenset(), allowed)


def test_lists_come_from_the_environment() -> None:
    config = Config({"COMFYQ_NODE_BLOCKLIST": "A, B", "COMFYQ_NODE_ALLOWLIST": "-"})
    assert config.NODE_BLOCKLIST == {"A", "B"} and config.NODE_ALLOWLIST == frozenset()
    assert "ExecutePython" in Config({}).NODE_BLOCKLIST
