"""``comfyq flower``'s choices: credentials by bind address, every comfyq queue listed, the line it prints."""
from __future__ import annotations

from pathlib import Path

import pytest

from comfyq import create_app
from comfyq.cli.flower_server import (MAX_TASKS, Access, access_for, build, celery_for, comfyq_queues, describe,
                                      with_declared)
from comfyq.config.settings import Config, parse_capabilities, parse_instances


def test_a_set_password_always_applies(tmp_path: Path) -> None:
    for address in ("127.0.0.1", "0.0.0.0"):
        access = access_for(address, "ops", "s3cret", tmp_path)
        assert access == Access("ops", "s3cret", "setting") and access.basic_auth() == ["ops:s3cret"]


def test_loopback_without_a_password_stays_open(tmp_path: Path) -> None:
    access = access_for("127.0.0.1", "admin", None, tmp_path)
    assert access.basic_auth() == [] and access.source == "none"
    assert "401 until COMFYQ_FLOWER_PASSWORD is set" in describe("127.0.0.1", 5555, access, tmp_path)
    assert not (tmp_path / "flower-password").exists()


def test_beyond_loopback_without_a_password_one_is_generated_and_kept(tmp_path: Path) -> None:
    access = access_for("0.0.0.0", "admin", None, tmp_path)
    assert access.user == "admin" and access.source == "generated"
    assert (tmp_path / "flower-password").read_text().strip() == access.password
    assert access_for("", "admin", "", tmp_path).password == access.password  # '' binds every interface too
    line = describe("0.0.0.0", 5555, access, tmp_path)
    assert f"user 'admin' with the password in {tmp_path / 'flower-password'}" in line
    assert access.password not in line


def test_a_user_name_with_a_colon_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="may not contain ':'"):
        access_for("127.0.0.1", "a:b", "x", tmp_path)


def test_every_queue_comfyq_declares_is_listed_before_any_worker_is_heard(tmp_path: Path) -> None:
    instances = parse_capabilities("gpu1=sdxl", parse_instances("gpu0=http://127.0.0.1:8188,gpu1=http://127.0.0.1:8189"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.db", "OUTPUT_DIR": str(tmp_path),
                      "INSTANCES": instances})
    declared = comfyq_queues(app.extensions["celery"])
    assert declared[0] == "comfy" and {"comfy.gpu0", "comfy.gpu1", "control", "webhooks"} <= set(declared)
    assert len(declared) == 6  # and gpu1's capability queue
    assert with_declared(declared, []) == declared
    assert with_declared(declared, ["webhooks", "other", "comfy.gpu0"]) == [*declared, "other"]


def test_flower_needs_no_flask_app_and_keeps_a_thousand_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYQ_INSTANCES", "gpu0=http://127.0.0.1:8188,gpu1=http://127.0.0.1:8189")
    monkeypatch.setenv("COMFYQ_CAPABILITIES", "gpu1=sdxl")
    monkeypatch.delenv("FLOWER_MAX_TASKS", raising=False)
    celery = celery_for(Config().as_dict())
    assert len(comfyq_queues(celery)) == 6 and celery.conf.task_routes["comfyq.run_job"] == {"queue": "comfy"}
    flower = build(celery, "127.0.0.1", 0, Access("admin", None, "none"))
    assert flower.options.max_tasks == MAX_TASKS == 1000
