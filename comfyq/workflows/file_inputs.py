"""Files a workflow names on its instance: the images it loads are the sender's uploads, save prefixes plain names.

An upload input (``image`` of LoadImage and LoadImageMask, and any input a
catalogue flags ``image_upload``, ``video_upload``…) reads a file from the
instance's input folder, where comfyq stages every user's images. So it must
name one of the sender's uploads (by id or stored name) or an image comfyq
placed itself (a template's image params); a path, someone else's file, a link
or anything else is refused. A save node's ``filename_prefix`` given as a
value must be a plain name (one fed by a link is left to ComfyUI, which refuses
a save outside its output folder). None of this needs a catalogue: it always runs.
"""
from __future__ import annotations

import copy
import ntpath
import posixpath
import re
from typing import Any, Collection, Mapping

from .published import Catalogue
from .input_checks import is_link, unwrapped
from .node_errors import Problem, input_problem, shown

# ComfyUI's own loaders, known without a catalogue (LoadImageOutput reads the output folder every user shares).
KNOWN_UPLOAD_INPUTS = {"LoadImage": ("image",), "LoadImageMask": ("image",), "LoadImageOutput": ("image",),
                       "LoadVideo": ("file",), "LoadAudio": ("audio",)}
PREFIX_INPUT = "filename_prefix"
MAX_PREFIX = 100
_CHAR = r"[\w\-.,+=@()\[\] ]"
# Letters, digits and a few marks; ':' only inside ComfyUI's %date:yyyy-MM-dd% / %Node.widget% placeholders.
PLAIN_PREFIX = re.compile(rf"(?:{_CHAR}|%(?:{_CHAR}|:)+%)+")
UPLOAD_HINT = "upload it (POST /v1/uploads) and give its id or stored name"


def upload_inputs(class_type: Any, catalogues: Mapping[str, Catalogue]) -> list[str]:
    """Return the inputs of ``class_type`` that load a file from the instance's input folder."""
    names = list(KNOWN_UPLOAD_INPUTS.get(class_type, ())) if isinstance(class_type, str) else []
    for catalogue in catalogues.values():
        node_class = catalogue.get(class_type) if isinstance(class_type, str) else None
        for name, spec in node_class.inputs.items() if node_class else ():
            if spec.upload and name not in names:
                names.append(name)
    return names


def named_files(workflow: Mapping[str, Any], catalogues: Mapping[str, Catalogue]) -> list[tuple[str, str, Any]]:
    """List ``(node id, input, value)`` for every upload input the workflow sets, values unwrapped."""
    found = []
    for node_id, node in workflow.items():
        if isinstance(node, dict) and isinstance(node.get("inputs"), dict):
            for name in upload_inputs(node.get("class_type"), catalogues):
                if name in node["inputs"]:
                    found.append((node_id, name, unwrapped(node["inputs"][name])))
    return found


def is_path(value: str) -> bool:
    """Return whether a name reaches outside a flat folder: separators, ``..``, absolute or drive paths."""
    return ("/" in value or "\\" in value or ".." in value or posixpath.isabs(value)
            or ntpath.isabs(value) or bool(ntpath.splitdrive(value)[0]))


def _upload_problem(name: str, given: Any, uploads: Collection[str]) -> Problem | None:
    """Return why an upload input's value is not one of ``uploads``, or None."""
    if is_link(given):
        return input_problem("not_an_upload", name, f" links to node {given[0]}; it must name one of your "
                             f"uploads itself: {UPLOAD_HINT}", given)
    value = unwrapped(given)
    if isinstance(value, str) and value in uploads:
        return None
    if isinstance(value, str) and is_path(value):
        return input_problem("not_an_upload", name, f": {shown(value)} is a path; images come only from your "
                             f"uploads: {UPLOAD_HINT}", value)
    return input_problem("not_an_upload", name, f": {shown(value)} is not one of your uploads; {UPLOAD_HINT}", value)


def prefix_problem(given: Any) -> Problem | None:
    """Return why a ``filename_prefix`` value is not a plain name, or None."""
    value = unwrapped(given)
    text = value if isinstance(value, str) else str(value)
    if 0 < len(text) <= MAX_PREFIX and PLAIN_PREFIX.fullmatch(text) and not is_path(text):
        return None
    return input_problem("unsafe_filename_prefix", PREFIX_INPUT, f": {shown(value)} is not a plain name; give 1 to "
                         f"{MAX_PREFIX} letters, digits, spaces or - _ . , + = @ ( ) [ ] (and %date:…% "
                         "placeholders), with no '/', '\\' or '..'", value)


def file_problems(node: Mapping[str, Any], catalogues: Mapping[str, Catalogue],
                  uploads: Collection[str] | None) -> list[Problem]:
    """Return a node's unsafe file names: upload inputs not in ``uploads`` (None: unchecked), prefixes not plain."""
    inputs, problems = node["inputs"], []
    for name in upload_inputs(node.get("class_type"), catalogues) if uploads is not None else ():
        found = _upload_problem(name, inputs[name], uploads) if name in inputs else None
        if found is not None:
            problems.append(found)
    if PREFIX_INPUT in inputs and not isinstance(inputs[PREFIX_INPUT], list):
        found = prefix_problem(inputs[PREFIX_INPUT])
        if found is not None:
            problems.append(found)
    return problems


def with_stored_names(workflow: dict[str, Any], catalogues: Mapping[str, Catalogue],
                      stored: Mapping[str, str]) -> dict[str, Any]:
    """Return ``workflow`` with every upload input naming its stored file (an upload id becomes its name)."""
    changes = [(node_id, name, stored[value]) for node_id, name, value in named_files(workflow, catalogues)
               if isinstance(value, str) and value in stored and workflow[node_id]["inputs"][name] != stored[value]]
    if not changes:
        return workflow
    workflow = copy.deepcopy(workflow)
    for node_id, name, file_name in changes:
        workflow[node_id]["inputs"][name] = file_name
    return workflow
