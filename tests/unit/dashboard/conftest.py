"""An offline app (no Redis, no instances) with a teacher, their student, another user and some of their work."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import offline_app


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    """An app whose Redis and instances cannot be reached."""
    return offline_app(f"sqlite:///{tmp_path}/t.db", tmp_path / "outputs")


def add_job(user_id: str, status: str, ago: float = 0.0, **fields: Any) -> str:
    """Add a job row of ``user_id`` created ``ago`` seconds back; return its id."""
    from comfyq.db.extensions import db
    from comfyq.db.models import Job, utcnow

    job = Job(user_id=user_id, status=status, queue="comfy", workflow={}, created_at=utcnow() - timedelta(seconds=ago),
              **fields)
    db.session.add(job)
    db.session.commit()
    return job.id


@pytest.fixture
def people(app: Flask) -> dict[str, str]:
    """Create teacher ``tess``, her student ``sam``, and ``olga`` (nobody's student); return name → id."""
    from comfyq.accounts import users

    with app.app_context():
        tess = users.create_user("tess", "teacher")
        sam = users.create_user("sam", "student", teacher=tess.name)
        olga = users.create_user("olga", "user")
        return {"tess": tess.id, "sam": sam.id, "olga": olga.id}
