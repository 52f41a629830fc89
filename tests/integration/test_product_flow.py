"""What a product backend does, with the Python client alone, against `comfyq up`: on local storage and on S3.

upload → submit with a webhook → live progress → the signed webhook → download.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from comfyq.cli.progress_bar import JobProgress
from comfyq.client import Client
from comfyq.webhooks.signing import verify
from comfyq.client.sse import Event
from tests.conftest import Receiver
from tests.integration.conftest import CREDENTIALS, admin_key_of, comfyq_up


def photo() -> bytes:
    """Return a small PNG to upload."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_upload_submit_follow_webhook_download(storage: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    settings = {"COMFYQ_WEBHOOK_ALLOW": "127.0.0.1", "COMFYQ_WEBHOOK_BACKOFF": "0.3"}
    if storage == "s3":
        settings.update(CREDENTIALS, COMFYQ_STORAGE="s3", COMFYQ_S3_BUCKET=request.getfixturevalue("bucket"),
                        COMFYQ_S3_ENDPOINT_URL=request.getfixturevalue("s3_url"), COMFYQ_S3_REGION="us-east-1")
    receiver = Receiver(codes=(503, 200))  # the product's endpoint: down once, then up
    with comfyq_up(tmp_path, settings) as (proc, ports, lines):
        client = Client(f"http://127.0.0.1:{ports['api']}", admin_key_of(proc, lines))
        client.set_webhook(receiver.url)
        secret = client.webhook()["secret"]
        picture = client.upload(photo())
        seen: list[Event] = []
        shown = io.StringIO()
        with JobProgress("img2img", out=shown) as bar:
            def watch(event: Event) -> None:
                seen.append(event)
                bar(event)
            files = client.run("img2img", {"prompt": "as a watercolour", "image": picture["id"], "steps": 6},
                               folder=tmp_path / "got", on_event=watch)
        deadline = time.monotonic() + 30
        while (job := client.job(seen[-1].job_id or ""))["webhook"]["deliveries"][0]["state"] != "delivered":
            assert time.monotonic() < deadline, job["webhook"]
            time.sleep(0.1)
    receiver.close()
    kinds = [e.type for e in seen]
    assert kinds[-1] == "succeeded" and "started" in kinds and "output" in kinds
    steps = [e.data["value"] for e in seen if e.type == "progress" and e.data["label"] == "Sampling" and e.data["max"]]
    assert steps[-1] == 6 and "Sampling 6/6" in shown.getvalue()  # what the CLI's bar showed
    # The webhook: tried twice (a 503, then taken), the same signed body both times.
    first, taken = receiver.hits
    assert first.headers["Comfyq-Delivery"] == taken.headers["Comfyq-Delivery"] and first.body == taken.body
    assert verify(secret, taken.body, taken.headers["Comfyq-Signature"])
    assert not verify(secret, taken.body.replace(b"succeeded", b"failed"), taken.headers["Comfyq-Signature"])
    told: dict[str, Any] = json.loads(taken.body)
    assert told["job_id"] == job["id"] and [o["name"] for o in told["outputs"]] == [f.name for f in files]
    (delivery,) = job["webhook"]["deliveries"]  # and every attempt shows on the job
    assert delivery["event"] == "succeeded" and [a["status_code"] for a in delivery["attempts"]] == [503, 200]
    # The download is the stored output, byte for byte (S3: through a presigned URL, without the key).
    (output,) = job["outputs"]
    assert hashlib.sha256(files[0].read_bytes()).hexdigest() == output["sha256"] == told["outputs"][0]["sha256"]
    assert files[0].read_bytes()[:4] == b"\x89PNG"
    if storage == "s3":
        assert "X-Amz-Signature=" in output["url"]
        s3 = boto3.client("s3", endpoint_url=request.getfixturevalue("s3_url"), region_name="us-east-1",
                          aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=request.getfixturevalue("bucket"))["Contents"]]
        assert any(key.endswith(output["name"]) for key in keys) and any("inputs" in key for key in keys), keys
    else:
        assert output["url"].startswith(client.base_url)
