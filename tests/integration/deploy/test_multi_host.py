"""A fleet as docker/README.rst lays it out: a control host and two GPU hosts, meeting only over TCP.

The control host runs the API, the reconciler and Redis, beside PostgreSQL and
an S3 server (moto's); each GPU host runs a ComfyUI (the simulator) and its
worker, with a folder of its own. Jobs go in over HTTP, run on both hosts, and
their outputs come back from the bucket; then one GPU host is lost mid-job and
its job ends on the other.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
import redis
import requests

from comfyq.sim.process import free_port
from tests.conftest import fresh_database, txt2img
from tests.integration.conftest import CREDENTIALS, TERMINAL, wait_until
from tests.integration.deploy.hosts import ControlHost, GpuHost, Host

BUCKET = "comfyq-fleet"


def s3_client(url: str) -> Any:
    """Return a boto3 client of the S3 server with the test credentials (not this process's environment)."""
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


class Fleet:
    """The running hosts, the API's URL and a service user's session of it."""

    def __init__(self, control: ControlHost, gpus: dict[str, GpuHost], api: str, s3_url: str) -> None:
        self.control, self.gpus, self.api, self.s3_url = control, gpus, api, s3_url
        created = control.comfyq("users", "create", "pipeline", "--role", "service", "--level", "expert")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {created.split()[-1]}"

    def submit(self, workflow: dict[str, Any]) -> str:
        """Submit a raw workflow over HTTP; return the job's id."""
        answer = self.http.post(f"{self.api}/v1/jobs", json={"workflow": workflow}, timeout=30)
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        """Return a job as the API shows it."""
        answer = self.http.get(f"{self.api}/v1/jobs/{job_id}", timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def wait(self, job_id: str, statuses: set[str] = TERMINAL, timeout: float = 60) -> dict[str, Any]:
        """Poll a job until its status is in ``statuses``; return it."""
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["status"] not in statuses:
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout} s: {job}"
            time.sleep(0.1)
        return job

    def online(self) -> dict[str, bool]:
        """Return what the API's instance listing says of each instance's worker."""
        rows = self.http.get(f"{self.api}/v1/instances", timeout=30).json()["instances"]
        return {row["name"]: row["worker_online"] for row in rows}

    def bucket_keys(self) -> set[str]:
        """Return the keys of every object in the fleet's bucket."""
        listed = s3_client(self.s3_url).list_objects_v2(Bucket=BUCKET)
        return {o["Key"] for o in listed.get("Contents", [])}


@pytest.fixture
def fleet(tmp_path: Path, s3_url: str, postgres_url: str) -> Iterator[Fleet]:
    """Start the control host, then two GPU hosts (a and b, one instance each); stop them all afterwards."""
    s3_client(s3_url).create_bucket(Bucket=BUCKET)
    ports = {"a": free_port(), "b": free_port()}
    with fresh_database(postgres_url, "fleet") as database:
        # docker/fleet.env: the same settings on every host (here on loopback; in a fleet, private addresses).
        settings = {**CREDENTIALS, "COMFYQ_DATABASE_URL": database, "COMFYQ_STORAGE": "s3",
                    "COMFYQ_S3_BUCKET": BUCKET, "COMFYQ_S3_ENDPOINT_URL": s3_url,
                    "COMFYQ_INSTANCES": ",".join(f"{h}-gpu0=http://127.0.0.1:{p}" for h, p in ports.items()),
                    "COMFYQ_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
                    "COMFYQ_CATALOGUE_TTL": "0", "COMFYQ_RECONCILE_INTERVAL": "1", "COMFYQ_RECONCILE_GRACE": "2"}
        control = ControlHost("control", tmp_path, settings)
        hosts: list[Host] = [control]
        try:
            control.start_redis()
            api = control.start_api()
            gpus = {h: GpuHost(f"gpu-{h}", tmp_path, settings, f"{h}-gpu0", port) for h, port in ports.items()}
            hosts += gpus.values()
            for gpu in gpus.values():
                gpu.start()
            broker = redis.Redis.from_url(settings["COMFYQ_REDIS_URL"])
            for gpu in gpus.values():
                gpu.wait_ready(broker)
            yield Fleet(control, gpus, api, s3_url)
        finally:
            for host in reversed(hosts):
                host.stop()


def graph(seed: int, seconds: float) -> dict[str, Any]:
    """Return a txt2img graph whose sampling takes about ``seconds`` on the simulator."""
    return txt2img(seed=seed, steps=5, sim={"3": {"step_seconds": seconds / 5}})


def test_jobs_run_on_both_gpu_hosts_come_back_through_s3_and_survive_losing_a_host(fleet: Fleet) -> None:
    first = [fleet.submit(graph(seed, 0.5)) for seed in range(6)]
    done = [fleet.wait(job_id) for job_id in first]
    assert [job["status"] for job in done] == ["succeeded"] * 6, done
    assert {job["instance"] for job in done} == {"a-gpu0", "b-gpu0"}  # both GPU hosts pulled work
    stored = fleet.bucket_keys()
    for job in done:
        (output,) = job["outputs"]
        assert f"outputs/{job['id']}/{output['name']}" in stored
        fetched = requests.get(output["url"], timeout=10)  # a presigned URL of the bucket, no API key
        assert fetched.status_code == 200 and hashlib.sha256(fetched.content).hexdigest() == output["sha256"]
    redirect = fleet.http.get(f"{fleet.api}/v1/jobs/{done[0]['id']}/outputs/{done[0]['outputs'][0]['name']}",
                              allow_redirects=False, timeout=30)
    assert redirect.status_code == 302 and redirect.headers["Location"].startswith(fleet.s3_url)
    for host in (fleet.control, *fleet.gpus.values()):
        assert not (host.dir / "data" / "outputs").exists()  # no host keeps outputs of its own

    # Lose GPU host a while its job runs there; the job and the rest of the backlog end on host b.
    second = [fleet.submit(graph(100 + seed, 3.0)) for seed in range(4)]
    sim_a = fleet.gpus["a"].comfyui
    wait_until(lambda: any(sim_a.journal_counts("started")[job_id] for job_id in second), timeout=60)
    victim = next(job_id for job_id in second if sim_a.journal_counts("started")[job_id])
    unfinished = [job_id for job_id in second if fleet.job(job_id)["status"] not in TERMINAL]
    fleet.gpus["a"].power_off()
    lost = time.monotonic()
    wait_until(lambda: fleet.online() == {"a-gpu0": False, "b-gpu0": True}, timeout=30)
    ended = {job_id: fleet.wait(job_id, timeout=90) for job_id in second}
    assert [job["status"] for job in ended.values()] == ["succeeded"] * 4, ended
    assert victim in unfinished and all(ended[job_id]["instance"] == "b-gpu0" for job_id in unfinished), ended
    assert ended[victim]["attempts"] == 2 and ended[victim]["worker"].startswith("b-gpu0@"), ended[victim]
    assert time.monotonic() - lost < 60
    stored = fleet.bucket_keys()
    assert all(f"outputs/{job_id}/{job['outputs'][0]['name']}" in stored for job_id, job in ended.items())
    assert fleet.gpus["b"].comfyui.journal_counts("started")[victim] == 1
