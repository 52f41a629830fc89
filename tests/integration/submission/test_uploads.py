"""Uploads: checked, stored once by content, owned, and sent to an instance only when it lacks them."""
from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from comfyq import create_app
from comfyq.sim import journal
from comfyq.sim.process import SimProcess
from tests.integration.conftest import new_user, wait_for, with_key


def image_bytes(width: int = 40, height: int = 30, fmt: str = "PNG") -> bytes:
    """Return an image of one random colour, so no other test sent the same bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), tuple(random.randrange(256) for _ in range(3))).save(buffer, fmt)
    return buffer.getvalue()


def bomb(side: int = 100_000) -> bytes:
    """Return a tiny PNG whose header claims ``side`` × ``side`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def animated() -> bytes:
    """Return a two-frame animated PNG."""
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def bad_header() -> bytes:
    """Return a PNG whose IHDR chunk claims a length of 5."""
    data = bytearray(image_bytes())
    data[8:12] = struct.pack(">I", 5)
    return bytes(data)


def send(client: FlaskClient, data: bytes, **form: str):
    """POST one file to /v1/uploads with ``form`` fields."""
    return client.post("/v1/uploads", data={"file": (io.BytesIO(data), "upload.png"), **form},
                       content_type="multipart/form-data")


@pytest.fixture(scope="module")
def owner(app: Flask) -> FlaskClient:
    return new_user(app, "uploader")


def test_the_same_bytes_give_the_same_upload_stored_once(owner: FlaskClient, stack_env: dict[str, str]) -> None:
    data = image_bytes()
    first, again = send(owner, data), send(owner, data)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json() == again.get_json()
    body = first.get_json()
    assert (body["width"], body["height"], body["content_type"], body["size"]) == (40, 30, "image/png", len(data))
    stored = list((Path(stack_env["COMFYQ_DATA_DIR"]) / "inputs").glob(f"{body['sha256']}.*"))
    assert len(stored) == 1 and stored[0].read_bytes() == data
    assert owner.get(f"/v1/uploads/{body['id']}").get_json() == body


@pytest.mark.parametrize("data, status, fragment", [
    (b"", 422, "the file is empty"),
    (b"not an image at all", 422, "not a readable PNG, JPEG or WebP image"),
    (image_bytes()[:60], 422, "truncated or corrupt"),
    (bomb(), 422, "claims far more pixels than the 16777216 accepted"),
    (bomb(5000), 422, "5000×5000 = 25000000 pixels; at most 16777216 are accepted"),
    (image_bytes(fmt="GIF"), 422, "not a readable PNG, JPEG or WebP image"),
    (image_bytes(fmt="EPS"), 422, "not a readable PNG, JPEG or WebP image"),  # never handed to Ghostscript
    (bad_header(), 422, "not a readable PNG, JPEG or WebP image"),
    (animated(), 422, "animated images are not accepted"),
])
def test_bad_files_are_refused_saying_why(owner: FlaskClient, data: bytes, status: int, fragment: str) -> None:
    answer = send(owner, data)
    body = answer.get_json()
    assert answer.status_code == status and fragment in body["message"], body
    assert set(body) == {"code", "status", "message", "errors"}


def test_size_and_pixel_caps(app: Flask, owner: FlaskClient) -> None:
    strict = with_key(create_app({**app.config, "MAX_UPLOAD_BYTES": 300, "MAX_UPLOAD_PIXELS": 1000}).test_client(),
                      owner.environ_base["HTTP_AUTHORIZATION"].split()[-1])
    too_big = send(strict, image_bytes(200, 200, "JPEG"))
    assert too_big.status_code == 413 and "bytes; at most 300 are accepted" in too_big.get_json()["message"]
    too_many = send(strict, image_bytes(40, 30))
    assert too_many.status_code == 422 and "1200 pixels; at most 1000" in too_many.get_json()["message"]
    assert send(owner, b"x", kind="sketch").status_code == 422


def test_a_mask_must_match_its_image_and_name_one_of_yours(app: Flask, owner: FlaskClient) -> None:
    image = send(owner, image_bytes(40, 30)).get_json()
    alone = send(owner, image_bytes(20, 20), kind="mask")
    assert alone.status_code == 201  # unpaired: checked against its image when a job pairs them
    paired = owner.post("/v1/jobs", json={"template": "inpaint", "params": {
        "prompt": "x", "image": image["id"], "mask": alone.get_json()["id"]}})
    assert paired.status_code == 422
    assert paired.get_json()["message"].startswith("params.mask: the mask is 20×20 but its image is 40×30")
    wrong = send(owner, image_bytes(20, 20), kind="mask", image=image["id"])
    assert wrong.status_code == 422 and "the mask is 20×20 but its image is 40×30" in wrong.get_json()["message"]
    assert send(owner, image_bytes(40, 30), kind="mask", image=image["id"]).status_code == 201
    stranger = new_user(app, "upload-stranger")
    assert send(stranger, image_bytes(40, 30), kind="mask", image=image["id"]).status_code == 404
    assert stranger.get(f"/v1/uploads/{image['id']}").status_code == 404
    borrowed = stranger.post("/v1/jobs", json={"template": "img2img", "params": {"prompt": "x", "image": image["id"]}})
    assert borrowed.status_code == 422 and "params.image: no upload" in borrowed.get_json()["message"]


def test_two_jobs_on_one_upload_send_it_to_the_instance_once(owner: FlaskClient, sims: list[SimProcess]) -> None:
    upload = send(owner, image_bytes(48, 32)).get_json()
    body = {"template": "img2img", "instance": "gpu0",
            "params": {"prompt": "again", "image": upload["id"], "denoise": 0.5, "steps": 2}}
    jobs = [owner.post("/v1/jobs", json=body).get_json() for _ in range(2)]
    done = [wait_for(owner, job["id"], timeout=60) for job in jobs]
    assert [j["status"] for j in done] == ["succeeded", "succeeded"], done
    assert done[0]["params"]["image"] == f"{upload['sha256']}.png"
    assert journal.counts(sims[0].journal_path, "uploaded")[f"{upload['sha256']}.png"] == 1


def test_uploads_are_named_only_by_their_owner_and_as_their_kind(app: Flask, owner: FlaskClient) -> None:
    image, mask = send(owner, image_bytes(40, 30)).get_json(), None
    mask = send(owner, image_bytes(40, 30), kind="mask", image=image["id"]).get_json()
    as_image = owner.post("/v1/jobs", json={"template": "img2img", "params": {"prompt": "x", "image": mask["id"]}})
    assert as_image.status_code == 422 and "is a mask; this param takes a image" in as_image.get_json()["message"]
    misnamed = send(owner, image_bytes(), image=image["id"])
    assert misnamed.status_code == 422 and "only a mask names an image" in misnamed.get_json()["message"]
    # A stored name is how a finished job's params show an image: only its owner may send it back.
    stranger = new_user(app, "name-guesser")
    guessed = stranger.post("/v1/jobs", json={"template": "img2img",
                                              "params": {"prompt": "x", "image": f"{image['sha256']}.png"}})
    assert guessed.status_code == 422 and "among your uploads" in guessed.get_json()["message"]
    estimate = owner.post("/v1/jobs:estimate", json={"template": "img2img",
                                                     "params": {"prompt": "x", "image": f"{image['sha256']}.png"}})
    assert estimate.status_code == 200


def test_an_inline_image_becomes_an_upload_under_the_same_caps(app: Flask, owner: FlaskClient) -> None:
    import base64

    data = image_bytes(40, 30)
    inline = "data:image/png;base64," + base64.b64encode(data).decode()
    job = owner.post("/v1/jobs", json={"template": "img2img", "params": {"prompt": "x", "image": inline,
                                                                           "steps": 2}}).get_json()
    assert send(owner, data).status_code == 200  # already one of the owner's uploads
    assert job["params"]["image"].endswith(".png")
    strict = with_key(create_app({**app.config, "MAX_UPLOAD_BYTES": 20}).test_client(),  # below any PNG
                      owner.environ_base["HTTP_AUTHORIZATION"].split()[-1])
    refused = strict.post("/v1/jobs", json={"template": "img2img", "params": {"prompt": "x", "image": inline}})
    assert refused.status_code == 413 and refused.get_json()["message"].startswith("params.image: the image is")
    wait_for(owner, job["id"], timeout=60)


def test_an_estimate_checks_an_inline_image_but_keeps_nothing(owner: FlaskClient, stack_env: dict[str, str]) -> None:
    import base64

    data = image_bytes(41, 29)
    inline = "data:image/png;base64," + base64.b64encode(data).decode()
    before = sorted(p.name for p in Path(stack_env["COMFYQ_DATA_DIR"]).rglob("*.png"))
    estimate = owner.post("/v1/jobs:estimate", json={"template": "img2img", "params": {"prompt": "x", "image": inline}})
    assert estimate.status_code == 200 and estimate.get_json()["cost"] >= 1
    assert sorted(p.name for p in Path(stack_env["COMFYQ_DATA_DIR"]).rglob("*.png")) == before
    assert send(owner, data).status_code == 201  # a new upload: the estimate made none
    broken = "data:image/png;base64," + base64.b64encode(bad_header()).decode()
    refused = owner.post("/v1/jobs:estimate", json={"template": "img2img", "params": {"prompt": "x", "image": broken}})
    assert refused.status_code == 422 and refused.get_json()["message"].startswith("params.image: ")
