"""Fleet actions from the dashboard: admins only, configured instances only, Redis needed."""
from __future__ import annotations

import pytest
from flask import Flask

from comfyq.accounts import users
from comfyq.dashboard.operations import drain, set_intake
from comfyq.db.extensions import db
from comfyq.db.models import User
from comfyq.errors import Forbidden, NotFound, Unavailable


def test_a_teacher_may_not_act_on_instances(app: Flask, people: dict[str, str]) -> None:
    with app.app_context():
        teacher = db.session.get(User, people["tess"])
        with pytest.raises(Forbidden):
            set_intake(teacher, "gpu0", False)
        with pytest.raises(Forbidden):
            drain(teacher, "gpu0")


def test_an_unknown_instance_is_404_and_no_redis_is_503(app: Flask) -> None:
    with app.app_context():
        admin = users.create_user("root", "admin")
        with pytest.raises(NotFound, match="configured: gpu0"):
            set_intake(admin, "gpu9", False)
        with pytest.raises(Unavailable):
            set_intake(admin, "gpu0", False)
        with pytest.raises(Unavailable):
            drain(admin, "gpu0")
