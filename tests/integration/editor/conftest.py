"""Students in ComfyUI's editor on the real test stack: a session each, opened like a browser opens its link."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import keyed_client


def student(app: Flask, name: str, credits: int = 1000, **limits: int) -> FlaskClient:
    """Create student ``name`` with credits (and ``limits``), open an editor session; return a client with its cookie."""
    from comfyq.accounts import credits as ledger, limits as user_limits, users

    with app.app_context():
        user = users.create_user(name, "student", "novice")
        if credits:
            ledger.change(user, credits, "grant", "test credits", None)
        user_limits.set_limits(user, limits)
    service = keyed_client(app, f"svc-{name}", "service")
    minted = service.post("/v1/editor-sessions", json={"user": name})
    assert minted.status_code == 201, minted.get_json()
    browser = app.test_client()
    link = urlsplit(minted.get_json()["link"])
    opened = browser.get(f"{link.path}?{link.query}")
    assert opened.status_code == 303 and opened.headers["Location"] == "/comfy/"
    return browser
