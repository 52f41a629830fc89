"""Saved (UI-format) graphs convert to the API graph ComfyUI's editor exports, node by node."""
from __future__ import annotations

import copy

import pytest

from comfyq.templates.sim_catalogue import simulator_catalogue
from comfyq.workflows.published import from_object_info
from comfyq.workflows.saved_format import SavedGraphInvalid, is_saved_format, to_api, widget_inputs, workflow_format

CATALOGUES = {"gpu0": from_object_info(simulator_catalogue())}


def node(id_: int, type_: str, inputs: list | None = None, outputs: list | None = None, widgets: list | None = None,
         mode: int = 0, **extra: object) -> dict:
    """Return one node as the editor saves it."""
    found = {"id": id_, "type": type_, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": id_, "mode": mode,
             "inputs": inputs or [], "outputs": outputs or [], "properties": {}, **extra}
    if widgets is not None:
        found["widgets_values"] = widgets
    return found


def slot(name: str, type_: str, link: int | None, widget: str | None = None) -> dict:
    """Return an input slot; ``widget`` marks one converted from a widget."""
    found: dict = {"name": name, "type": type_, "link": link}
    if widget:
        found["widget"] = {"name": widget}
    return found


def out(name: str, type_: str, links: list[int]) -> dict:
    """Return an output slot."""
    return {"name": name, "type": type_, "links": links, "slot_index": 0}


def txt2img_saved() -> dict:
    """A text-to-image graph with a primitive seed, a reroute, a bypassed node, a muted node and a note."""
    nodes = [
        node(4, "CheckpointLoaderSimple", outputs=[out("MODEL", "MODEL", [1]), out("CLIP", "CLIP", [3, 5]),
                                                   out("VAE", "VAE", [8])], widgets=["sd15.safetensors"]),
        node(6, "CLIPTextEncode", [slot("clip", "CLIP", 3)], [out("CONDITIONING", "CONDITIONING", [4])],
             ["a lighthouse at dusk"]),
        node(7, "CLIPTextEncode", [slot("clip", "CLIP", 5)], [out("CONDITIONING", "CONDITIONING", [6])],
             ["blurry"], title="Negative"),
        node(5, "EmptyLatentImage", outputs=[out("LATENT", "LATENT", [10])], widgets=[512, 768, 1]),
        node(20, "Reroute", [slot("", "*", 10)], [out("", "LATENT", [2])]),
        node(21, "PrimitiveNode", outputs=[{"name": "INT", "type": "INT", "links": [11],
                                            "widget": {"name": "seed"}}], widgets=[424242, "fixed"], title="seed"),
        node(3, "KSampler", [slot("model", "MODEL", 1), slot("positive", "CONDITIONING", 4),
                             slot("negative", "CONDITIONING", 6), slot("latent_image", "LATENT", 2),
                             slot("seed", "INT", 11, widget="seed")],
             [out("LATENT", "LATENT", [7])], [1, "randomize", 25, 7.5, "euler", "karras", 1.0]),
        node(8, "VAEDecode", [slot("samples", "LATENT", 7), slot("vae", "VAE", 8)], [out("IMAGE", "IMAGE", [9, 14])]),
        node(10, "ImageInvert", [slot("image", "IMAGE", 9)], [out("IMAGE", "IMAGE", [12])], mode=4),
        node(9, "SaveImage", [slot("images", "IMAGE", 12)], widgets=["lighthouse"]),
        node(11, "PreviewImage", [slot("images", "IMAGE", 14)], mode=2),
        node(30, "Note", widgets=["remember to pick a good seed"]),
    ]
    links = [[1, 4, 0, 3, 0, "MODEL"], [3, 4, 1, 6, 0, "CLIP"], [5, 4, 1, 7, 0, "CLIP"],
             [4, 6, 0, 3, 1, "CONDITIONING"],
             [6, 7, 0, 3, 2, "CONDITIONING"], [10, 5, 0, 20, 0, "LATENT"], [2, 20, 0, 3, 3, "LATENT"],
             [11, 21, 0, 3, 4, "INT"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"], [9, 8, 0, 10, 0, "IMAGE"],
             [12, 10, 0, 9, 0, "IMAGE"], [14, 8, 0, 11, 0, "IMAGE"]]
    return {"last_node_id": 30, "last_link_id": 14, "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4}


TXT2IMG_API = {
    "4": {"inputs": {"ckpt_name": "sd15.safetensors"}, "class_type": "CheckpointLoaderSimple",
          "_meta": {"title": "Load Checkpoint"}},
    "6": {"inputs": {"text": "a lighthouse at dusk", "clip": ["4", 1]}, "class_type": "CLIPTextEncode",
          "_meta": {"title": "CLIP Text Encode (Prompt)"}},
    "7": {"inputs": {"text": "blurry", "clip": ["4", 1]}, "class_type": "CLIPTextEncode",
          "_meta": {"title": "Negative"}},
    "5": {"inputs": {"width": 512, "height": 768, "batch_size": 1}, "class_type": "EmptyLatentImage",
          "_meta": {"title": "Empty Latent Image"}},
    "3": {"inputs": {"seed": 424242, "steps": 25, "cfg": 7.5, "sampler_name": "euler", "scheduler": "karras",
                     "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                     "latent_image": ["5", 0]}, "class_type": "KSampler", "_meta": {"title": "KSampler"}},
    "8": {"inputs": {"samples": ["3", 0], "vae": ["4", 2]}, "class_type": "VAEDecode",
          "_meta": {"title": "VAE Decode"}},
    # The bypassed invert passes VAEDecode's image straight on; the muted preview is left out.
    "9": {"inputs": {"filename_prefix": "lighthouse", "images": ["8", 0]}, "class_type": "SaveImage",
          "_meta": {"title": "Save Image"}},
}


def test_detects_the_saved_format() -> None:
    assert is_saved_format(txt2img_saved())
    assert workflow_format(txt2img_saved()) == "saved"
    assert workflow_format(TXT2IMG_API) == "api"
    assert not is_saved_format({"nodes": {"class_type": "X", "inputs": {}}})  # an API node that is named "nodes"


def test_reroute_primitive_bypass_and_mute_convert_node_by_node() -> None:
    converted = to_api(txt2img_saved(), CATALOGUES)
    assert sorted(converted) == sorted(TXT2IMG_API)
    for node_id, expected in TXT2IMG_API.items():
        assert converted[node_id] == expected, node_id


def test_control_value_is_skipped_and_an_unlinked_seed_keeps_its_widget() -> None:
    graph = txt2img_saved()
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] != 21]
    ksampler = next(n for n in graph["nodes"] if n["id"] == 3)
    ksampler["inputs"] = ksampler["inputs"][:4]
    converted = to_api(graph, CATALOGUES)
    assert converted["3"]["inputs"]["seed"] == 1
    assert converted["3"]["inputs"]["steps"] == 25


def test_bypass_with_no_matching_input_drops_the_link() -> None:
    graph = txt2img_saved()
    decode = next(n for n in graph["nodes"] if n["id"] == 8)
    decode["mode"] = 4  # its inputs are LATENT and VAE: nothing passes on as IMAGE
    converted = to_api(graph, CATALOGUES)
    assert "8" not in converted
    assert "images" not in converted["9"]["inputs"]


def test_widget_values_by_name_and_list_values() -> None:
    loader = CATALOGUES["gpu0"]["LoadImage"]
    assert widget_inputs(loader, ["cat.png", "image"]) == {"image": "cat.png"}
    assert widget_inputs(loader, {"image": "cat.png", "upload": "image"}) == {"image": "cat.png"}


def subgraph_saved() -> dict:
    """An image graph whose middle (scale then invert) is a subgraph with a promoted scale widget."""
    definition = {
        "id": "5b2f6a0e-0000-4000-8000-000000000001", "version": 1, "name": "Shrink and invert",
        "state": {"lastNodeId": 3, "lastLinkId": 4, "lastGroupId": 0, "lastRerouteId": 0}, "revision": 0,
        "config": {}, "inputNode": {"id": -10, "bounding": [0, 0, 10, 10]},
        "outputNode": {"id": -20, "bounding": [0, 0, 10, 10]},
        "inputs": [{"id": "i0", "name": "image", "type": "IMAGE", "linkIds": [1]},
                   {"id": "i1", "name": "scale_by", "type": "FLOAT", "linkIds": [2]}],
        "outputs": [{"id": "o0", "name": "IMAGE", "type": "IMAGE", "linkIds": [4]}],
        "widgets": [],
        "nodes": [
            node(1, "ImageScaleBy", [slot("image", "IMAGE", 1), slot("scale_by", "FLOAT", 2, widget="scale_by")],
                 [out("IMAGE", "IMAGE", [3])], ["bicubic", 1.0]),
            node(2, "Reroute", [slot("", "*", 3)], [out("", "IMAGE", [4])]),
        ],
        "links": [{"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "IMAGE"},
                  {"id": 2, "origin_id": -10, "origin_slot": 1, "target_id": 1, "target_slot": 1, "type": "FLOAT"},
                  {"id": 3, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "IMAGE"},
                  {"id": 4, "origin_id": 2, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}],
    }
    nodes = [
        node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE", [1]), out("MASK", "MASK", [])],
             widgets=["cat.png", "image"]),
        node(2, definition["id"], [slot("image", "IMAGE", 1), slot("scale_by", "FLOAT", None, widget="scale_by")],
             [out("IMAGE", "IMAGE", [2])], [0.5]),
        node(3, "SaveImage", [slot("images", "IMAGE", 2)], widgets=["small"]),
    ]
    links = [{"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "IMAGE"},
             {"id": 2, "origin_id": 2, "origin_slot": 0, "target_id": 3, "target_slot": 0, "type": "IMAGE"}]
    return {"id": "wf", "revision": 0, "last_node_id": 3, "last_link_id": 2, "nodes": nodes, "links": links,
            "groups": [], "definitions": {"subgraphs": [definition]}, "config": {}, "extra": {}, "version": 0.4}


def test_subgraph_expands_under_its_instance_id() -> None:
    converted = to_api(subgraph_saved(), CATALOGUES)
    assert converted == {
        "1": {"inputs": {"image": "cat.png"}, "class_type": "LoadImage", "_meta": {"title": "Load Image"}},
        "2:1": {"inputs": {"upscale_method": "bicubic", "scale_by": 0.5, "image": ["1", 0]},
                "class_type": "ImageScaleBy", "_meta": {"title": "Upscale Image By"}},
        "3": {"inputs": {"filename_prefix": "small", "images": ["2:1", 0]}, "class_type": "SaveImage",
              "_meta": {"title": "Save Image"}},
    }


def test_subgraph_input_linked_outside_wins_over_the_widget() -> None:
    graph = subgraph_saved()
    graph["nodes"].append(node(4, "PrimitiveNode", outputs=[{"name": "FLOAT", "type": "FLOAT", "links": [3]}],
                               widgets=[0.25]))
    graph["nodes"][1]["inputs"][1]["link"] = 3
    graph["links"].append({"id": 3, "origin_id": 4, "origin_slot": 0, "target_id": 2, "target_slot": 1,
                           "type": "FLOAT"})
    assert to_api(graph, CATALOGUES)["2:1"]["inputs"]["scale_by"] == 0.25


def test_reroute_primitive_bypass_and_subgraph_in_one_graph_convert_node_by_node() -> None:
    graph = txt2img_saved()
    definition = subgraph_saved()["definitions"]["subgraphs"][0]
    graph["definitions"] = {"subgraphs": [definition]}
    graph["nodes"].append(node(40, definition["id"], [slot("image", "IMAGE", 12),
                                                      slot("scale_by", "FLOAT", None, widget="scale_by")],
                               [out("IMAGE", "IMAGE", [15])], [0.5]))
    save = next(n for n in graph["nodes"] if n["id"] == 9)
    save["inputs"][0]["link"] = 15
    graph["links"] = [link for link in graph["links"] if link[0] != 12] + [
        [12, 10, 0, 40, 0, "IMAGE"], [15, 40, 0, 9, 0, "IMAGE"]]
    expected = {**TXT2IMG_API,
                # the bypassed invert hands VAEDecode's image to the subgraph, whose reroute folds away
                "40:1": {"inputs": {"upscale_method": "bicubic", "scale_by": 0.5, "image": ["8", 0]},
                         "class_type": "ImageScaleBy", "_meta": {"title": "Upscale Image By"}},
                "9": {"inputs": {"filename_prefix": "lighthouse", "images": ["40:1", 0]}, "class_type": "SaveImage",
                      "_meta": {"title": "Save Image"}}}
    converted = to_api(graph, CATALOGUES)
    assert sorted(converted) == sorted(expected)
    for node_id, wanted in expected.items():
        assert converted[node_id] == wanted, node_id
    assert converted["3"]["inputs"]["seed"] == 424242  # from the primitive, not the KSampler's own widget


@pytest.mark.parametrize("breakage, kind, where", [
    (lambda g: g["nodes"][2].update(type="NoSuchNode"), "class_not_installed", "3"),
    (lambda g: g["nodes"][2]["inputs"][0].update(link=99), "bad_saved_graph", "3"),
    (lambda g: g["nodes"][2].update(type="workflow>My group"), "group_node_not_supported", "3"),
])
def test_unconvertible_graphs_get_one_422_naming_the_node(breakage, kind, where) -> None:
    graph = copy.deepcopy(subgraph_saved())
    breakage(graph)
    with pytest.raises(SavedGraphInvalid) as caught:
        to_api(graph, CATALOGUES)
    assert caught.value.status == 422
    assert caught.value.errors["node_errors"][where]["errors"][0]["type"] == kind
    assert f"node {where}" in caught.value.message


@pytest.mark.parametrize("breakage, message", [
    (lambda g: g.update(links=[[1, 1, "zero", 2, 0, "IMAGE"]]), "needs integer or string ids and slot indexes"),
    (lambda g: g.update(links="all of them"), "'links' must be a list"),
    (lambda g: g["links"].append(7), "is neither [id, from, slot, to, slot, type] nor an object"),
])
def test_malformed_links_are_a_422_not_a_crash(breakage, message) -> None:
    graph = subgraph_saved()
    breakage(graph)
    with pytest.raises(SavedGraphInvalid) as caught:
        to_api(graph, CATALOGUES)
    assert message in caught.value.message and caught.value.message.startswith("saved-format graph: ")


def test_a_node_with_unreadable_slots_is_named() -> None:
    graph = subgraph_saved()
    graph["nodes"][2]["inputs"] = [{"name": "images", "type": {"odd": 1}, "link": {"not": "an id"}}]
    with pytest.raises(SavedGraphInvalid) as caught:
        to_api(graph, CATALOGUES)
    assert caught.value.message.startswith("saved-format graph: node 3 (SaveImage): input 'images' names link")
    graph["nodes"][2]["inputs"] = "none"
    graph["nodes"][2]["widgets_values"] = 5
    assert to_api(graph, CATALOGUES)["3"]["inputs"] == {}  # nothing readable: validation reports what is missing


def test_the_published_catalogue_keeps_what_naming_widgets_needs() -> None:
    ksampler = CATALOGUES["gpu0"]["KSampler"]
    assert list(ksampler.inputs)[:3] == ["model", "seed", "steps"]  # declared order, required first
    assert ksampler.inputs["seed"].control and not ksampler.inputs["steps"].control
    assert ksampler.display_name == "KSampler" and CATALOGUES["gpu0"]["VAEDecode"].display_name == "VAE Decode"
    composite = CATALOGUES["gpu0"]["ImageCompositeMasked"]
    assert list(composite.inputs)[-1] == "mask" and not composite.inputs["mask"].required


def test_nested_subgraphs_that_multiply_are_refused_early() -> None:
    graph = subgraph_saved()
    definition = graph["definitions"]["subgraphs"][0]
    outer = {**definition, "id": "5b2f6a0e-0000-4000-8000-000000000002",
             "nodes": [node(n, definition["id"]) for n in range(1, 40)], "links": []}
    graph["definitions"]["subgraphs"].append(outer)
    graph["nodes"] += [node(100 + n, outer["id"]) for n in range(40)]  # 40 × 39 × 2 inner nodes
    with pytest.raises(SavedGraphInvalid) as caught:
        to_api(graph, CATALOGUES, max_nodes=100)
    assert "too many nodes once its subgraphs are expanded" in caught.value.message
