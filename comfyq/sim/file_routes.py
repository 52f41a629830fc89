"""``/view`` and ``/upload/image|mask`` with ComfyUI's path rules and rename semantics."""
from __future__ import annotations

import hashlib
import json
import mimetypes
import os
from typing import Any, Callable

from aiohttp import web
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from . import images
from .files import FOLDER_TYPES, Folders, file_digest
from .routes import SIM

routes = web.RouteTableDef()
UNSAFE_TYPES = {"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript", "text/css"}


def _folders(request: web.Request) -> Folders:
    return request.app[SIM].folders


def _annotation(folders: Folders, name: str) -> tuple[str, str | None]:
    """Split ``name [output]`` into (name, folder); folder is None without annotation."""
    for kind in FOLDER_TYPES:
        if name.endswith(f" [{kind}]"):
            return name[: -len(kind) - 3], folders.by_type(kind)
    return name, None


def _resolve(folders: Folders, filename: str, kind: str, subfolder: str | None) -> str | web.Response:
    """Return the file a /view-style reference points at, or the refusal."""
    filename, folder = _annotation(folders, filename)
    if not filename or filename[0] == "/" or ".." in filename:
        return web.Response(status=400)
    folder = folder or folders.by_type(kind)
    if folder is None:
        return web.Response(status=400)
    if subfolder is not None:
        full = os.path.join(folder, subfolder)
        if os.path.commonpath((os.path.abspath(full), folder)) != folder:
            return web.Response(status=403)
        folder = full
    return os.path.join(folder, os.path.basename(filename))


@routes.get("/view")
async def view_image(request: web.Request) -> web.StreamResponse:
    """Serve a file from input/, output/ or temp/, optionally re-encoded."""
    query = request.query
    if "filename" not in query:
        return web.Response(status=404)
    found = _resolve(_folders(request), query["filename"], query.get("type", "output"), query.get("subfolder"))
    if isinstance(found, web.Response):
        return found
    if not os.path.isfile(found):
        return web.Response(status=404)
    name = os.path.basename(found)
    disposition = {"Content-Disposition": f'filename="{name}"'}
    channel = query.get("channel", "rgba")
    if "preview" in query:
        fmt, *rest = query["preview"].split(";")
        fmt = fmt if fmt in ("webp", "jpeg") and "a" not in channel else "webp"
        quality = int(rest[-1]) if rest and rest[-1].isdigit() else 90
        with Image.open(found) as img:
            body = images.encode(img.convert("RGB") if channel == "rgb" else img, fmt.upper(), quality)
        return web.Response(body=body, content_type=f"image/{fmt}", headers=disposition)
    if channel in ("rgb", "a"):
        with Image.open(found) as img:
            if channel == "rgb":
                picked = img.convert("RGB")
            else:
                alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
                picked = Image.new("RGBA", img.size)
                picked.putalpha(alpha)
            body = images.encode(picked, "PNG")
        return web.Response(body=body, content_type="image/png", headers=disposition)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if content_type in UNSAFE_TYPES:
        content_type = "application/octet-stream"
    return web.FileResponse(found, headers={**disposition, "Content-Type": content_type})


def _same_content(path: str, upload: Any) -> bool:
    data = upload.file.read()
    upload.file.seek(0)
    return file_digest(path) == hashlib.sha256(data).hexdigest()


def _upload(folders: Folders, post: Any, save: Callable[[Any, Any, str], None] | None = None) -> web.Response:
    """Store an uploaded image, renaming ``x (1).png`` when the name holds other bytes."""
    upload = post.get("image")
    overwrite = post.get("overwrite")
    kind = post.get("type") or "input"
    folder = folders.by_type(kind)
    if folder is None:
        raise ValueError(f"unknown upload type {kind!r}")
    if not upload or not getattr(upload, "file", None):
        return web.Response(status=400)
    filename = upload.filename
    if not filename:
        return web.Response(status=400)
    subfolder = post.get("subfolder", "")
    full_folder = os.path.join(folder, os.path.normpath(subfolder))
    path = os.path.abspath(os.path.join(full_folder, filename))
    if os.path.commonpath((folder, path)) != folder:
        return web.Response(status=400)
    os.makedirs(full_folder, exist_ok=True)
    stem, ext = os.path.splitext(filename)
    duplicate = False
    if overwrite not in ("true", "1"):
        counter = 1
        while os.path.exists(path):
            if _same_content(path, upload):
                duplicate = True
                break
            filename = f"{stem} ({counter}){ext}"
            path = os.path.join(full_folder, filename)
            counter += 1
    if not duplicate:
        if save is not None:
            save(upload, post, path)
        else:
            with open(path, "wb") as fh:
                fh.write(upload.file.read())
    return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})


@routes.post("/upload/image")
async def upload_image(request: web.Request) -> web.Response:
    """Store an uploaded image (journalled, so tests can count what reached the instance)."""
    answer = _upload(_folders(request), await request.post())
    if answer.status == 200:
        request.app[SIM].journal.record("uploaded", json.loads(answer.body)["name"])
    return answer


@routes.post("/upload/mask")
async def upload_mask(request: web.Request) -> web.Response:
    """Store an uploaded mask applied as alpha onto the image it references."""
    folders = _folders(request)

    def apply_mask(upload: Any, post: Any, path: str) -> None:
        # Like ComfyUI, a bad original_ref silently saves nothing yet still answers 200.
        ref = json.loads(post.get("original_ref"))
        found = _resolve(folders, ref.get("filename", ""), ref.get("type", "output"), ref.get("subfolder") or None)
        if isinstance(found, web.Response) or not os.path.isfile(found):
            return
        with Image.open(found) as original:
            info = PngInfo()
            for key, value in getattr(original, "text", {}).items():
                info.add_text(key, value)
            masked = original.convert("RGBA")
        masked.putalpha(Image.open(upload.file).convert("RGBA").getchannel("A"))
        masked.save(path, compress_level=4, pnginfo=info)

    return _upload(folders, await request.post(), apply_mask)
