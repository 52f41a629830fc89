"""Credits under a race: 200 submissions at once through `comfyq api` (uvicorn) spend a balance of 10 exactly, never more.

Each run gets a fresh database (a SQLite file, or a new PostgreSQL database),
its own Redis database and a real ``comfyq api`` with several sync workers, so
the submissions race across processes as in production. No Celery worker runs:
accepted jobs stay queued or pending.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import pytest
import redis
import requests
from flask import Flask
from sqlalchemy import select
from sqlalchemy.engine import make_url

from comfyq.accounts import users as accounts, credits, limits
from comfyq import create_app
from comfyq.config.settings import Config
from comfyq.db.extensions import db
from comfyq.db.models import Job, LedgerEntry, User
from comfyq.sim.process import free_port

CREDITS, SUBMISSIONS, API_WORKERS = 10, 200, 4
BODY: dict[str, Any] = {"template": "txt2img", "params": {"prompt": "x"}}  # 512×512, 20 steps: one credit
REDIS_DB = {"sqlite": 11, "postgresql": 12}  # not the stack's database 0, whose workers would take our jobs
ACCESS = re.compile(r"^<(?P<pid>\d+)> (?P<method>[A-Z]+) (?P<path>\S+) HTTP/1.1 (?P<status>\d{3})", re.M)
# uvicorn reads UVICORN_LOG_CONFIG: log each request with the pid of the process that served it.
LOG_CONFIG = {"version": 1, "disable_existing_loggers": False,
              "formatters": {"access": {"()": "uvicorn.logging.AccessFormatter", "use_colors": False,
                                        "fmt": "<%(process)d> %(request_line)s %(status_code)s"}},
              "handlers": {"access": {"class": "logging.StreamHandler", "formatter": "access",
                                      "stream": "ext://sys.stdout"}},
              "loggers": {"uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False}}}


class Api(NamedTuple):
    """A running ``comfyq api`` and what the test needs to talk to it and to its database."""

    url: str
    key: str
    user_id: str
    app: Flask
    log: Path


@pytest.fixture
def api(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Api]:
    """A user "payer" with exactly CREDITS credits, and `comfyq api` (API_WORKERS processes) on the database."""
    index = REDIS_DB[make_url(database_url).get_backend_name()]
    env = {
        "COMFYQ_DATABASE_URL": database_url,
        "COMFYQ_REDIS_URL": f"{redis_url.rsplit('/', 1)[0]}/{index}",
        "COMFYQ_DATA_DIR": str(tmp_path / "data"),
        "COMFYQ_INSTANCES": "gpu0=http://127.0.0.1:9",  # never contacted: nothing runs the jobs
    }
    redis.Redis.from_url(env["COMFYQ_REDIS_URL"]).flushdb()
    app = create_app(Config(env).as_dict())
    key, user_id = seed(app)
    log, port = tmp_path / "api.log", free_port()
    proc = start_api(env, port, log)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, log)
        yield Api(f"http://127.0.0.1:{port}", key, user_id, app, log)
    finally:
        stop_api(proc)
        with app.app_context():
            db.engine.dispose()


def seed(app: Flask) -> tuple[str, str]:
    """Create the paying user with CREDITS credits, one job running at most and no other limit; return key and id."""
    with app.app_context():
        user = accounts.create_user("payer", "user", "expert")
        credits.change(user, CREDITS, "grant", "exactly ten", None)
        limits.set_limits(user, {"max_running": 1, "max_waiting": 0, "rate_per_minute": 0})
        return accounts.issue_key(user)[1], user.id


def start_api(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start `comfyq api` in a process group of its own, logging each request with the pid that served it."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("COMFYQ_")}
    config = log.with_name("logging.json")
    config.write_text(json.dumps(LOG_CONFIG))
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "comfyq", "api", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(API_WORKERS)],
            env={**inherited, **env, "UVICORN_LOG_CONFIG": str(config)},
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def served_by(log: Path, method: str, path: str) -> list[tuple[int, int]]:
    """Return (worker pid, status) of each logged request to ``method path``."""
    return [(int(m["pid"]), int(m["status"])) for m in ACCESS.finditer(log.read_text(errors="replace"))
            if m["method"] == method and m["path"] == path]


def probe(url: str) -> None:
    """Ask /healthz several times at once, so that every idle worker answers one."""
    def one(_: int) -> None:
        try:
            requests.get(f"{url}/healthz", timeout=30)  # waits in the backlog while workers load the app
        except requests.ConnectionError:  # not listening yet
            time.sleep(0.1)

    with ThreadPoolExecutor(2 * API_WORKERS) as pool:
        list(pool.map(one, range(2 * API_WORKERS)))


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Block until every API process has loaded the app and answered /healthz with 200."""
    deadline = time.monotonic() + timeout
    while len({pid for pid, status in served_by(log, "GET", "/healthz") if status == 200}) < API_WORKERS:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"comfyq api not ready: {log.read_text(errors='replace')[-3000:]}")
        probe(url)


def stop_api(proc: subprocess.Popen[bytes]) -> None:
    """Stop `comfyq api` (its parent stops the workers); fail if any process of its group is left."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"processes of comfyq api (group {proc.pid}) outlived their master")


def submit_at_once(url: str, key: str, count: int) -> list[tuple[int, dict[str, Any]]]:
    """POST BODY ``count`` times from as many threads released together; return each (status, body)."""
    start = threading.Barrier(count)
    answers: list[tuple[int, dict[str, Any]] | None] = [None] * count

    def submit(i: int) -> None:
        start.wait(30)
        try:
            answer = requests.post(f"{url}/v1/jobs", json=BODY, headers={"Authorization": f"Bearer {key}"},
                                   timeout=60)
            answers[i] = (answer.status_code, answer.json())
        except (requests.RequestException, ValueError) as exc:
            answers[i] = (0, {"exception": repr(exc)})

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(a is not None for a in answers), "a submission thread never finished"
    return [a for a in answers if a is not None]


def wait_logged(log: Path, method: str, path: str, count: int, timeout: float = 10) -> list[tuple[int, int]]:
    """Return the logged requests to ``method path`` once there are ``count`` (workers log after answering)."""
    deadline = time.monotonic() + timeout
    while len(found := served_by(log, method, path)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_concurrent_submissions_spend_exactly_the_balance(api: Api) -> None:
    auth = {"Authorization": f"Bearer {api.key}"}
    estimate = requests.post(f"{api.url}/v1/jobs:estimate", json=BODY, headers=auth, timeout=10).json()
    assert (estimate["cost"], estimate["balance"]) == (1, CREDITS), estimate

    answers = submit_at_once(api.url, api.key, SUBMISSIONS)

    log_tail = api.log.read_text(errors="replace")[-4000:]
    statuses = Counter(status for status, _ in answers)
    assert statuses == {202: CREDITS, 402: SUBMISSIONS - CREDITS}, (statuses, log_tail)
    for status, body in answers:
        if status == 402:
            assert set(body) == {"code", "status", "message", "errors"}, body
            assert (body["code"], body["status"]) == (402, "Payment Required"), body
            assert body["errors"] == {"balance": 0, "cost": 1}, body
            assert "costs 1 credits and your balance is 0" in body["message"], body
    accepted = {body["id"] for status, body in answers if status == 202}
    assert len(accepted) == CREDITS
    served = wait_logged(api.log, "POST", "/v1/jobs", SUBMISSIONS)
    assert Counter(status for _, status in served) == statuses
    assert len({pid for pid, _ in served}) > 1, "one API process served every submission: nothing raced"

    with api.app.app_context():
        balance = db.session.scalar(select(User.balance).where(User.id == api.user_id))
        entries = db.session.scalars(select(LedgerEntry).where(LedgerEntry.user_id == api.user_id)).all()
        jobs = db.session.scalars(select(Job)).all()
        assert balance == 0 and credits.ledger_sum(api.user_id) == balance
    assert sorted((e.kind, e.amount) for e in entries) == [*[("debit", -1)] * CREDITS, ("grant", CREDITS)]
    assert {e.job_id for e in entries if e.kind == "debit"} == accepted
    assert {job.id for job in jobs} == accepted and len(jobs) == CREDITS
    assert all(job.user_id == api.user_id and job.cost == 1 for job in jobs)
    assert Counter(job.status for job in jobs) == {"queued": 1, "pending": CREDITS - 1}  # max_running is 1

    account = requests.get(f"{api.url}/v1/account", headers=auth, timeout=10).json()
    assert account["balance"] == 0 and account["metered"] is True
    assert sorted((e["kind"], e["amount"]) for e in account["ledger"]) == \
        [*[("debit", -1)] * CREDITS, ("grant", CREDITS)]
    assert {e["job_id"] for e in account["ledger"] if e["kind"] == "debit"} == accepted
    assert account["usage"] == {"pending": CREDITS - 1, "queued": 1, "running": 0}
