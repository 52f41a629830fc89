"""Fixtures of the API's unit tests: an app without services, an admin's client, the OpenAPI document."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import keyed_client, offline_app


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return offline_app(f"sqlite:///{tmp_path}/t.db", tmp_path / "out")


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return keyed_client(app)


@pytest.fixture
def spec(admin: FlaskClient) -> dict[str, Any]:
    return admin.get("/openapi.json").get_json()
