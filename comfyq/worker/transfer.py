"""Files between comfyq and an instance: input images staged there, a finished prompt's outputs collected."""
from __future__ import annotations

from typing import Any

from ..comfy import ComfyClient, ComfyProtocolError
from ..db.models import Output
from ..storage.base import Store, content_type, safe_name, unique_name


def history_files(history: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """List (node id, file ref) for every file a prompt's history names."""
    files = []
    for node_id, node_out in (history.get("outputs") or {}).items():
        for items in node_out.values() if isinstance(node_out, dict) else ():
            if isinstance(items, list):
                files.extend((str(node_id), i) for i in items if isinstance(i, dict) and i.get("filename"))
    return files


def download_outputs(job_id: str, history: dict[str, Any], client: ComfyClient, store: Store) -> list[Output]:
    """Download every file of a prompt's history into the store; return the unsaved Output rows."""
    outputs: list[Output] = []
    taken: set[str] = set()
    for node_id, item in history_files(history):
        name = unique_name(safe_name(item["filename"]), taken)
        with store.writer(store.relative(job_id, name)) as fh:
            size, sha256 = client.download(item["filename"], item.get("subfolder", ""),
                                           item.get("type", "output"), dest=fh)
        outputs.append(Output(job_id=job_id, name=name, node_id=node_id, kind=item.get("type", "output"),
                              content_type=content_type(name), size=size, sha256=sha256,
                              path=store.relative(job_id, name)))
    return outputs


def stage_inputs(client: ComfyClient, store: Store, names: list[str]) -> None:
    """Upload the input images the instance does not have yet (names are content hashes)."""
    for name in names:
        if not client.has_file(name, type="input"):
            answer = client.upload_image(store.read(name), name, overwrite=True)
            if answer["name"] != name:
                raise ComfyProtocolError(f"input {name} was stored as {answer['name']}", client.base_url)
