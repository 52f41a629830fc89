"""An offline app (no Redis, no instances) with a student who opened the editor."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import keyed_client, offline_app


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    """An app whose Redis and instances cannot be reached."""
    return offline_app(f"sqlite:///{tmp_path}/t.db", tmp_path / "outputs")


@pytest.fixture
def service(app: Flask) -> FlaskClient:
    """A service's API client: what a teaching platform's backend holds."""
    return keyed_client(app, "platform", "service")


def make_student(app: Flask, name: str, teacher: str | None = None) -> None:
    """Create a novice student (with credits)."""
    from comfyq.accounts import credits, users

    with app.app_context():
        credits.change(users.create_user(name, "student", "novice", teacher), 100, "grant", "test", None)


def link_path(link: str) -> str:
    """Return the path and query of an editor link, as a test client requests it."""
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def open_editor(app: Flask, service: FlaskClient, name: str) -> FlaskClient:
    """Mint a session for student ``name`` and open it; return the browser holding the cookie."""
    minted = service.post("/v1/editor-sessions", json={"user": name})
    assert minted.status_code == 201, minted.get_json()
    browser = app.test_client()
    assert browser.get(link_path(minted.get_json()["link"])).status_code == 303
    return browser


@pytest.fixture
def ada(app: Flask, service: FlaskClient) -> FlaskClient:
    """Student ada's browser, in the editor."""
    make_student(app, "ada")
    return open_editor(app, service, "ada")
