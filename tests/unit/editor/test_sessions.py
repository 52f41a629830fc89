"""Editor sessions: who may mint them, single-use links, the cookie, expiry and revocation."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from comfyq.db.extensions import db
from comfyq.db.models import EditorSession, utcnow
from tests.conftest import keyed_client
from tests.unit.editor.conftest import link_path, make_student, open_editor


def test_a_link_works_once_and_sets_a_safe_cookie(app: Flask, service: FlaskClient) -> None:
    make_student(app, "ada")
    minted = service.post("/v1/editor-sessions", json={"user": "ada"})
    assert minted.status_code == 201
    body = minted.get_json()
    assert body["state"] == "unopened" and body["link"].startswith("http://localhost/comfy/?ticket=")
    browser = app.test_client()
    opened = browser.get(link_path(body["link"]))
    assert opened.status_code == 303 and opened.headers["Location"] == "/comfy/"
    cookie = opened.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/comfy/" in cookie
    assert "Max-Age=43200" in cookie and "Secure" not in cookie  # COMFYQ_EDITOR_SESSION_HOURS=12, http
    assert browser.get("/comfy/").status_code == 200
    again = app.test_client().get(link_path(body["link"]))
    assert again.status_code == 401 and b"already used" in again.data
    with app.app_context():  # only hashes are stored
        row = db.session.get(EditorSession, body["id"])
        assert body["link"].split("=", 1)[1] not in (row.ticket_sha256, row.token_sha256)


def test_the_cookie_is_secure_behind_an_https_public_url(app: Flask, service: FlaskClient) -> None:
    app.config["PUBLIC_URL"] = "https://class.example.org"
    make_student(app, "ada")
    link = service.post("/v1/editor-sessions", json={"user": "ada"}).get_json()["link"]
    assert link.startswith("https://class.example.org/comfy/?ticket=")
    assert "Secure" in app.test_client().get(link_path(link)).headers["Set-Cookie"]


def test_an_expired_link_and_an_expired_session_answer_401(app: Flask, service: FlaskClient) -> None:
    make_student(app, "ada")
    link = service.post("/v1/editor-sessions", json={"user": "ada"}).get_json()["link"]
    browser = open_editor(app, service, "ada")
    with app.app_context():
        db.session.execute(update(EditorSession).values(ticket_expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert app.test_client().get(link_path(link)).status_code == 401
    assert browser.get("/comfy/api/queue").status_code == 200
    with app.app_context():
        db.session.execute(update(EditorSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    gone = browser.get("/comfy/api/queue")
    assert gone.status_code == 401 and gone.get_json()["code"] == 401
    page = browser.get("/comfy/")
    assert page.status_code == 401 and page.mimetype == "text/html" and b"No editor session" in page.data


def test_a_revoked_session_answers_401_at_once_and_listing_shows_no_secret(app: Flask, service: FlaskClient) -> None:
    make_student(app, "ada")
    browser = open_editor(app, service, "ada")
    (listed,) = service.get("/v1/editor-sessions?user=ada").get_json()
    assert listed["state"] == "active" and "link" not in listed and "ticket" not in str(listed).replace(
        "ticket_expires_at", "")
    revoked = service.delete(f"/v1/editor-sessions/{listed['id']}")
    assert revoked.status_code == 200 and revoked.get_json()["state"] == "revoked"
    assert browser.get("/comfy/api/settings").status_code == 401
    assert browser.get("/comfy/assets/nothing.js").status_code == 401
    assert browser.get("/comfy/").status_code == 401


def test_the_wheels_own_files_are_public_but_the_page_and_other_paths_are_not(app: Flask) -> None:
    from comfyq.editor.static import frontend_root

    anyone = app.test_client()
    (manifest,) = [p.name for p in (frontend_root() / "assets").iterdir() if p.name.startswith("manifest-")]
    answer = anyone.get(f"/comfy/assets/{manifest}")  # browsers fetch the web manifest without cookies
    assert answer.status_code == 200 and answer.get_json() is not None
    for path in ("/comfy/", "/comfy/index.html", "/comfy/assets/nothing.js", "/comfy/assets/..%2F..%2Fsetup.py",
                 "/comfy/api/queue"):
        assert anyone.get(path).status_code == 401, path


def test_teachers_open_only_their_own_students_and_students_none(app: Flask, service: FlaskClient) -> None:
    teacher = keyed_client(app, "teach", "teacher")
    other = keyed_client(app, "teach2", "teacher")
    make_student(app, "mine", teacher="teach")
    make_student(app, "theirs", teacher="teach2")
    assert teacher.post("/v1/editor-sessions", json={"user": "mine"}).status_code == 201
    assert teacher.post("/v1/editor-sessions", json={"user": "theirs"}).status_code == 404
    assert teacher.get("/v1/editor-sessions?user=theirs").status_code == 404
    theirs = other.post("/v1/editor-sessions", json={"user": "theirs"}).get_json()["id"]
    assert teacher.delete(f"/v1/editor-sessions/{theirs}").status_code == 404
    pupil = keyed_client(app, "pupil", "student")
    refused = pupil.post("/v1/editor-sessions", json={"user": "pupil"})
    assert refused.status_code == 403 and "service, teacher or admin" in refused.get_json()["message"]
    assert service.post("/v1/editor-sessions", json={"user": "nobody"}).status_code == 404
    assert service.post("/v1/editor-sessions", json={}).status_code == 422
