"""Slow, stalled, chunked and oversized requests against a real `comfyq api`: one process, one Flask thread.

Before bodies were read in the event loop, two stalled bodies froze such a server for every client.
"""
from __future__ import annotations

import io
import json
import select
import socket
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from PIL import Image

from comfyq.accounts import users as accounts, credits
from comfyq.db.extensions import db
from comfyq.db.models import Job, Upload
from tests.integration.conftest import api_server

LIMIT = 2_000_000
READ_TIMEOUT = 4.0
SETTINGS = {"COMFYQ_READ_TIMEOUT": str(READ_TIMEOUT), "COMFYQ_BODY_DEADLINE": "20",
            "COMFYQ_MAX_BODY_BYTES": str(LIMIT), "COMFYQ_MAX_UPLOAD_BYTES": "1000000"}
JOB = {"template": "txt2img", "params": {"prompt": "a chunked lighthouse", "steps": 2}}


@pytest.fixture(scope="module")
def api(stack_env: dict[str, str], app: Flask, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `comfyq api` process (one Flask thread) with a small body limit and a 4 s read timeout."""
    with api_server({**stack_env, **SETTINGS}, tmp_path_factory.mktemp("api") / "api.log") as url:
        yield url


def user_key(app: Flask, name: str) -> tuple[str, str]:
    """Create a user with 100 credits; return its id and an API key."""
    with app.app_context():
        user = accounts.create_user(name, "user", "expert")
        credits.change(user, 100, "grant", "test credits", None)
        return user.id, accounts.issue_key(user)[1]


def jobs_and_balance(app: Flask, user_id: str) -> tuple[int, int]:
    """Return how many jobs the user has and their balance."""
    with app.app_context():
        return Job.query.filter_by(user_id=user_id).count(), credits.balance_of(user_id)


def connect(url: str) -> socket.socket:
    """Open a plain TCP connection to the API."""
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def head(method: str, path: str, key: str, **headers: str) -> bytes:
    """Return a request's head, ending in the blank line."""
    lines = [f"{method} {path} HTTP/1.1", "Host: comfyq", f"Authorization: Bearer {key}",
             *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(sock: socket.socket, timeout: float = 30, wait_close: bool = True) -> tuple[int, dict[str, Any], bool]:
    """Read a response; return its status, JSON body and whether the server then closed (if ``wait_close``)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    top, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(l.split(b":")[1] for l in top.split(b"\r\n") if l.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    closed = wait_close and answer_closes(sock)
    return int(top.split()[1]), json.loads(rest[:length]), closed


def answer_closes(sock: socket.socket) -> bool:
    """Return whether the server closes ``sock`` with nothing more to say."""
    sock.settimeout(30)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:  # closed with bytes we sent after its answer still unread: a reset, still a close
        return True


def pending(sock: socket.socket) -> bool:
    """Return whether the server has said nothing yet on ``sock``."""
    return not select.select([sock], [], [], 0)[0]


def others_are_served(api: str, key: str, count: int = 10) -> None:
    """Assert that ``count`` requests of another client are each answered within 1 s."""
    session = requests.Session()
    for _ in range(count):
        started = time.monotonic()
        response = session.get(f"{api}/v1/account", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert response.status_code == 200 and time.monotonic() - started < 1.0


def test_stalled_bodies_hold_no_thread_and_are_dropped_with_408(api: str, app: Flask) -> None:
    user_id, key = user_key(app, "stalls-bodies")
    _, other = user_key(app, "waits-behind-stalls")
    stalled = []
    for _ in range(4):  # a declared length, and a tenth of it sent
        sock = connect(api)
        sock.sendall(head("POST", "/v1/jobs", key, Content_Type="application/json", Content_Length="100000")
                     + b'{"template": "txt2img", "params": {"prompt": "' + b"x" * 10000)
        stalled.append(sock)
    for _ in range(2):  # chunked, one chunk sent and no end
        sock = connect(api)
        sock.sendall(head("POST", "/v1/jobs", key, Content_Type="application/json", Transfer_Encoding="chunked")
                     + b'10\r\n{"template": "tx\r\n')
        stalled.append(sock)
    others_are_served(api, other)
    assert all(pending(sock) for sock in stalled)  # the others were served while every body still stalled
    for sock in stalled:
        status, body, closed = answer(sock)
        assert (status, body["code"], closed) == (408, 408, True)
        assert "did not arrive in time" in body["message"] and "may pause at most 4 s" in body["message"]
    assert jobs_and_balance(app, user_id) == (0, 100)


def test_a_body_that_trickles_past_the_deadline_is_dropped(api: str, app: Flask, stack_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    user_id, key = user_key(app, "trickles")
    with api_server({**stack_env, **SETTINGS, "COMFYQ_READ_TIMEOUT": "2", "COMFYQ_BODY_DEADLINE": "3"},
                    tmp_path / "api.log") as short:
        sock = connect(short)
        sock.sendall(head("POST", "/v1/jobs", key, Content_Type="application/json", Content_Length="1000"))
        started = time.monotonic()
        while pending(sock) and time.monotonic() - started < 20:  # a byte a second: never a 2 s pause
            sock.sendall(b" ")
            time.sleep(1)
        status, body, _ = answer(sock)
    assert status == 408 and "at most 3 s in all" in body["message"]
    assert 2.5 < time.monotonic() - started < 10
    assert jobs_and_balance(app, user_id) == (0, 100)


def chunks(data: bytes, size: int = 7) -> Iterator[bytes]:
    """Yield ``data`` in small pieces, so requests sends it chunked."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_a_chunked_job_is_read_whole_and_accepted(api: str, app: Flask) -> None:
    user_id, key = user_key(app, "sends-chunked")
    response = requests.post(f"{api}/v1/jobs", data=chunks(json.dumps(JOB).encode()), timeout=30,
                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["params"]["prompt"] == "a chunked lighthouse" and job["params"]["steps"] == 2
    assert jobs_and_balance(app, user_id) == (1, 100 - job["cost"])


def test_a_chunked_upload_is_accepted(api: str, app: Flask) -> None:
    _, key = user_key(app, "uploads-chunked")
    png = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(png, format="PNG")
    form = requests.Request("POST", f"{api}/v1/uploads", files={"file": ("red.png", png.getvalue())}).prepare()
    assert isinstance(form.body, bytes)
    response = requests.post(f"{api}/v1/uploads", data=chunks(form.body, 1000), timeout=30,
                             headers={"Authorization": f"Bearer {key}", "Content-Type": form.headers["Content-Type"]})
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 201, response.text
    upload = response.json()
    assert (upload["width"], upload["height"]) == (16, 16)
    with app.app_context():
        assert db.session.get(Upload, upload["id"]).sha256 == upload["sha256"]


def test_a_chunked_body_over_the_limit_is_refused_before_it_ends(api: str, app: Flask) -> None:
    user_id, key = user_key(app, "sends-too-much")
    sock = connect(api)
    sock.sendall(head("POST", "/v1/jobs", key, Content_Type="application/json", Transfer_Encoding="chunked"))
    piece = b"x" * 65536
    total, sent = 40 * LIMIT, 0
    while sent < total and pending(sock):
        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        sent += len(piece)
    # The answer came while the body was still being sent: it was never read whole, let alone kept.
    assert sent < total
    status, body, closed = answer(sock)
    assert (status, closed) == (413, True) and "over the limit of 2000000 bytes" in body["message"]
    assert jobs_and_balance(app, user_id) == (0, 100)


def test_a_declared_length_over_the_limit_is_refused_at_once(api: str, app: Flask) -> None:
    _, key = user_key(app, "declares-too-much")
    sock = connect(api)
    sock.sendall(head("POST", "/v1/uploads", key, Content_Type="multipart/form-data; boundary=x",
                      Content_Length=str(LIMIT + 1)))
    started = time.monotonic()
    status, body, _ = answer(sock, wait_close=False)
    assert status == 413 and f"the body is {LIMIT + 1} bytes" in body["message"]
    assert time.monotonic() - started < READ_TIMEOUT  # answered at once, not after waiting for the body
    assert answer_closes(sock)
    assert requests.get(f"{api}/healthz", timeout=10).status_code == 200


def test_a_client_that_stops_reading_its_download_is_dropped_and_frees_the_thread(api: str, app: Flask) -> None:
    user_id, key = user_key(app, "reads-slowly")
    auth = {"Authorization": f"Bearer {key}"}
    job = requests.post(f"{api}/v1/jobs", json=JOB, headers=auth, timeout=30).json()
    deadline = time.monotonic() + 120
    while (job := requests.get(f"{api}/v1/jobs/{job['id']}", headers=auth, timeout=30).json())["status"] != "succeeded":
        assert job["status"] not in ("failed", "timed_out", "cancelled") and time.monotonic() < deadline, job
        time.sleep(0.1)
    size = 24 * 2 ** 20  # more than the socket buffers and a2wsgi's queue hold, so the writing thread blocks
    with app.app_context():
        output = db.session.get(Job, job["id"]).outputs[0]
        app.extensions["stores"].outputs.local_path(output.path).write_bytes(b"\0" * size)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    parts = urlsplit(api)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(head("GET", urlsplit(job["outputs"][0]["url"]).path, key))
    # The one Flask thread is stuck writing until the reader is dropped; then others are served at once again.
    deadline = time.monotonic() + 60
    while True:
        started = time.monotonic()
        served = requests.get(f"{api}/v1/account", headers=auth, timeout=60).status_code == 200
        if served and time.monotonic() - started < 1.0:
            break
        assert time.monotonic() < deadline
    others_are_served(api, key)
    got = b""
    sock.settimeout(30)
    try:
        while chunk := sock.recv(1 << 20):
            got += chunk
    except ConnectionResetError:
        pass
    assert got.startswith(b"HTTP/1.1 200 OK") and len(got) < size  # the server cut the stalled download short
