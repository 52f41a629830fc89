"""Fixtures shared by unit and integration tests."""
from __future__ import annotations

import contextlib

import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from comfyq import create_app
from comfyq.config.settings import parse_instances
from comfyq.sim.testing import txt2img as sim_txt2img, with_node_knobs
from tests.postgres import PostgresServer


NOWHERE = "redis://127.0.0.1:1/0"  # a Redis nobody listens on


def offline_app(database_url: str, output_dir: Path, instances: str = "gpu0=http://127.0.0.1:1",
                **config: Any) -> Flask:
    """Build an app on ``database_url`` whose Redis, broker and instances cannot be reached (a unit test's)."""
    return create_app({"SQLALCHEMY_DATABASE_URI": database_url, "OUTPUT_DIR": str(output_dir), "REDIS_URL": NOWHERE,
                       "BROKER_URL": NOWHERE, "INSTANCES": parse_instances(instances), **config})


def with_key(test_client: FlaskClient, key: str | None) -> FlaskClient:
    """Make every request of ``test_client`` carry ``key`` (None: no key at all)."""
    test_client.environ_base.pop("HTTP_AUTHORIZATION", None)
    if key:
        test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return test_client


def keyed_client(app: Flask, name: str = "root", role: str = "admin") -> FlaskClient:
    """Create user ``name`` with ``role``; return a test client that sends their key."""
    from comfyq.accounts import users

    with app.app_context():
        key = users.issue_key(users.create_user(name, role, "expert"))[1]
    return with_key(app.test_client(), key)


def txt2img(seed: int = 1, steps: int = 4, size: int = 64, prefix: str = "comfyq",
            sim: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return ComfyUI's default text-to-image graph (3 KSampler, 8 VAEDecode, 9 SaveImage).

    ``sim`` maps node ids to simulator knobs, carried in each node's ``_meta``.
    """
    graph = sim_txt2img(seed=seed, steps=steps, width=size, height=size, prefix=prefix)
    for node_id, knobs in (sim or {}).items():
        graph = with_node_knobs(graph, node_id, **knobs)
    return graph


class Hit(NamedTuple):
    """One request a receiver got."""

    at: float
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A local HTTP server on a random port that records each POST and answers with scripted status codes.

    Given ``check``, a receiver's signature check of the body and headers, it
    answers 401 to a POST the check raises on, and records why in ``refusals``.
    """

    def __init__(self, codes: tuple[int, ...] = (200,), host: str = "127.0.0.1",
                 check: Callable[[bytes, dict[str, str]], Any] | None = None) -> None:
        self.codes, self.hits, self.lock = list(codes), [], threading.Lock()
        self.refusals: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.hits.append(Hit(time.monotonic(), dict(self.headers), body))
                    code = receiver.codes.pop(0) if len(receiver.codes) > 1 else receiver.codes[0]
                    try:
                        if check is not None:
                            check(body, dict(self.headers))
                    except Exception as exc:  # whatever the check raises, as a receiver would refuse it
                        receiver.refusals.append(f"{type(exc).__name__}: {exc}")
                        code = 401
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no" if code >= 300 else b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str = "comfyq") -> Iterator[str]:
    """Create an empty database on a PostgreSQL server; yield its URL, then drop it."""
    server = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/comfyq.db"
        return
    with fresh_database(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Start a PostgreSQL server for the session; yield its database URL."""
    # Not under pytest's tmp dir: the server's user must be able to reach its folder.
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="comfyq-pg-"))).start()
    try:
        yield server.url
    finally:
        server.stop()
