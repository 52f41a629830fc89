"""The S3 store against a real S3-protocol server (moto's standalone server): real HTTP, real boto3."""
from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
import requests
from flask import Flask

from comfyq.accounts import users as accounts
from comfyq import create_app
from comfyq.config.settings import Config
from comfyq.storage.s3 import S3Store
from comfyq.sim.process import SimProcess, free_port
from tests.integration.conftest import CREDENTIALS, wait_for, wait_worker_ready, with_key
from tests.integration.templates.test_templates_e2e import png

def store(s3_url: str, bucket: str, area: str = "outputs/") -> S3Store:
    """Return the store of one area of ``bucket``, built as the app builds it."""
    return S3Store.from_config({"S3_ENDPOINT_URL": s3_url, "S3_REGION": "us-east-1", "S3_BUCKET": bucket,
                                "S3_PREFIX": "team-a/", "S3_URL_EXPIRES": 60}, area)


def test_write_read_exists_presign_and_remove(s3_url: str, bucket: str) -> None:
    outputs = store(s3_url, bucket)
    key = outputs.relative("job-1", "image.png")
    assert not outputs.exists(key)
    with outputs.writer(key) as fh:
        fh.write(b"\x89PNG fake bytes")
    with pytest.raises(RuntimeError), outputs.writer(outputs.relative("job-1", "half.png")) as fh:
        fh.write(b"half")
        raise RuntimeError("the download broke")
    assert outputs.exists(key) and not outputs.exists(outputs.relative("job-1", "half.png"))
    assert outputs.read(key) == b"\x89PNG fake bytes"
    listed = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1").list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["team-a/outputs/job-1/image.png"]
    url = outputs.url(key, "image.png", "image/png")
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200 and fetched.content == b"\x89PNG fake bytes"
    assert fetched.headers["Content-Type"] == "image/png"
    # Real S3 answers with this disposition; moto ignores the parameter, so check that the URL asks for it.
    assert "response-content-disposition=attachment%3B%20filename%3D%22image.png%22" in url
    assert "X-Amz-Expires=60" in url
    outputs.remove_job("job-1")
    assert not outputs.exists(key)
    with pytest.raises(FileNotFoundError):
        outputs.read(key)


def test_a_job_with_an_input_image_runs_end_to_end_on_s3(s3_url: str, bucket: str, redis_url: str,
                                                          tmp_path: Path) -> None:
    # A stack of its own (Redis database 5, one simulator, one worker), so only this worker takes the job.
    with SimProcess(output_dir=str(tmp_path / "sim")) as sim:
        env = {**CREDENTIALS, "COMFYQ_REDIS_URL": redis_url.rsplit("/", 1)[0] + "/5",
               "COMFYQ_INSTANCES": f"s3gpu={sim.url}", "COMFYQ_DATA_DIR": str(tmp_path / "data"),
               "COMFYQ_DATABASE_URL": f"sqlite:///{tmp_path}/s3.db", "COMFYQ_STORAGE": "s3",
               "COMFYQ_S3_BUCKET": bucket, "COMFYQ_S3_ENDPOINT_URL": s3_url, "COMFYQ_S3_PREFIX": "team-a/",
               "COMFYQ_CATALOGUE_TTL": "0"}
        broker = redis.Redis.from_url(env["COMFYQ_REDIS_URL"])
        broker.flushdb()
        clean = {k: v for k, v in os.environ.items() if not k.startswith("COMFYQ_")}
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen([sys.executable, "-m", "comfyq", "worker", "s3gpu"], env={**clean, **env},
                                      stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_worker_ready(broker, "s3gpu", worker, log)
            app = create_app(Config(env).as_dict())
            done, redirect = _run_img2img(app)
        finally:
            os.killpg(worker.pid, 15)
            worker.wait(20)
    assert done["status"] == "succeeded", done
    (output,) = done["outputs"]
    fetched = requests.get(output["url"], timeout=10)  # presigned: straight from the bucket, no API key
    assert fetched.status_code == 200 and hashlib.sha256(fetched.content).hexdigest() == output["sha256"]
    assert "X-Amz-Signature=" in output["url"]
    assert redirect.status_code == 302 and "X-Amz-Signature=" in redirect.location  # the API's download route
    keys = {o["Key"] for o in boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
            .list_objects_v2(Bucket=bucket)["Contents"]}
    assert f"team-a/outputs/{done['id']}/{output['name']}" in keys
    assert any(k.startswith("team-a/inputs/") and k.endswith(".png") for k in keys)  # the input image, by hash
    assert not (tmp_path / "data" / "outputs").exists()  # nothing went to the local directory


def _run_img2img(app: Flask) -> tuple[dict[str, Any], Any]:
    """Submit an img2img job as a service user through ``app``; return it once ended, and its download answer."""
    with app.app_context():
        key = accounts.issue_key(accounts.create_user("s3svc", "service", "expert"))[1]
    client = with_key(app.test_client(), key)
    answer = client.post("/v1/jobs", json={"template": "img2img", "params": {
        "prompt": "on S3", "image": png(), "denoise": 0.5, "steps": 2}})
    assert answer.status_code == 202, answer.get_json()
    job = wait_for(client, answer.get_json()["id"], timeout=60)
    name = job["outputs"][0]["name"] if job["outputs"] else "none"
    return job, client.get(f"/v1/jobs/{job['id']}/outputs/{name}")


def test_retention_deletes_expired_outputs_from_the_bucket(s3_url: str, bucket: str, tmp_path: Path) -> None:
    from comfyq.control.retention import expire_outputs
    from tests.unit.control.test_retention import finished_job

    app = create_app(Config({"COMFYQ_DATA_DIR": str(tmp_path), "COMFYQ_REDIS_URL": "redis://127.0.0.1:1/0",
                             "COMFYQ_STORAGE": "s3", "COMFYQ_S3_BUCKET": bucket, "COMFYQ_S3_ENDPOINT_URL": s3_url,
                             "COMFYQ_OUTPUT_RETENTION_HOURS": "1"}).as_dict())
    with app.app_context():
        owner = accounts.create_user("keeper", "user")
        old, fresh = finished_job(owner, 5), finished_job(owner, 0.5)
        assert expire_outputs()["expired_jobs"] == [old]
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
            .list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"outputs/{fresh}/out.png"]


def test_an_unreachable_bucket_is_a_503_never_a_500(bucket: str, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    app = create_app(Config({"COMFYQ_DATA_DIR": str(tmp_path), "COMFYQ_REDIS_URL": "redis://127.0.0.1:1/0",
                             "COMFYQ_STORAGE": "s3", "COMFYQ_S3_BUCKET": bucket,
                             "COMFYQ_S3_ENDPOINT_URL": dead}).as_dict())
    with app.app_context():
        key = accounts.issue_key(accounts.create_user("no-bucket", "user"))[1]
    client = with_key(app.test_client(), key)
    answer = client.post("/v1/uploads", data={"file": (io.BytesIO(base64.b64decode(png().split(",")[1])), "a.png")},
                         content_type="multipart/form-data")
    body = answer.get_json()
    assert answer.status_code == 503 and "the S3 store cannot be reached" in body["message"], body
    assert set(body) == {"code", "status", "message", "errors"}
