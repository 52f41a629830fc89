"""One timestamp format everywhere: ISO 8601 in UTC with microseconds and ``+00:00``, whatever the database."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask
from marshmallow import Schema, fields
from sqlalchemy import create_engine, make_url, text

from comfyq.accounts import users as accounts, credits
from comfyq.api.fields import TIMESTAMP_PATTERN, Timestamp
from comfyq.db.extensions import db
from comfyq.db.models import LedgerEntry, User
from comfyq.db.timestamps import isoformat
from tests.conftest import offline_app

ISO = re.compile(TIMESTAMP_PATTERN)


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _leaves(field: fields.Field) -> Iterator[fields.Field]:
    """Yield a field and the fields inside it (a list's items, a dict's values)."""
    yield field
    for inner in (getattr(field, "inner", None), getattr(field, "value_field", None)):
        if inner is not None:
            yield from _leaves(inner)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Flask:
    if database_url.startswith("postgresql"):  # a zone far from UTC: values come back in it unless converted
        url = make_url(database_url)
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {url.database} SET timezone TO 'Asia/Kolkata'"))
        engine.dispose()
    return offline_app(database_url, tmp_path / "out")


def test_users_keys_and_ledger_entries_carry_their_offset(app: Flask) -> None:
    before = datetime.now(timezone.utc)
    with app.app_context():
        root = accounts.create_user("root", "admin", "expert")
        key = accounts.issue_key(root, "laptop")[1]
        credits.change(root, 5, "grant", None, None)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    issued = client.post("/v1/admin/users/root/keys").get_json()
    client.post(f"/v1/admin/keys/{issued['id']}/revoke")
    account = client.get("/v1/account").get_json()
    shown = [client.get("/v1/admin/users").get_json()[0]["created_at"], issued["created_at"],
             client.get("/v1/admin/users/root/ledger").get_json()["items"][0]["created_at"],
             account["user"]["created_at"], account["ledger"][0]["created_at"]]
    shown += [moment for k in account["keys"] for moment in (k["created_at"], k["revoked_at"]) if moment]
    assert len(shown) == 8
    for moment in shown:
        assert ISO.fullmatch(moment), moment
        assert timedelta(0) <= datetime.fromisoformat(moment) - before < timedelta(minutes=1), moment
    with app.app_context():  # read back from the database: aware, in UTC
        for moment in (db.session.scalars(db.select(User.created_at)).first(),
                       db.session.scalars(db.select(LedgerEntry.created_at)).first()):
            assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


def test_every_datetime_field_of_every_schema_is_a_timestamp(app: Flask) -> None:
    found = set()
    for schema in _subclasses(Schema):
        if not schema.__module__.startswith("comfyq."):
            continue
        for name, field in schema().fields.items():
            for leaf in _leaves(field):
                if isinstance(leaf, fields.DateTime):
                    assert isinstance(leaf, Timestamp), f"{schema.__name__}.{name}"
                    found.add(f"{schema.__name__}.{name}")
    assert {"UserSchema.created_at", "KeySchema.created_at", "KeySchema.revoked_at", "LedgerEntrySchema.created_at",
            "JobSchema.created_at", "JobSchema.finished_at", "BatchSchema.created_at", "UploadSchema.created_at",
            "WebhookDeliverySchema.next_attempt_at", "WebhookAttemptSchema.at",
            "InstanceSchema.last_seen"} <= found
    spec = app.test_client().get("/openapi.json").get_json()
    dated = [(name, prop) for schema in spec["components"]["schemas"].values()
             for name, prop in schema.get("properties", {}).items() if prop.get("format") == "date-time"]
    assert len(dated) >= len(found) - 2  # subclasses (IssuedKey) and the many=True variants share components
    assert all(prop["pattern"] == TIMESTAMP_PATTERN for _, prop in dated), dated


@pytest.mark.parametrize("moment", [
    datetime(2026, 12, 4, 14, 30, 52),  # naive: read as UTC, as SQLite hands datetimes back
    datetime(2026, 12, 4, 20, 0, 52, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 12, 4, 14, 30, 52, 378047, tzinfo=timezone.utc),
])
def test_any_datetime_is_written_in_utc_with_its_offset(moment: datetime) -> None:
    written = Timestamp().serialize("at", {"at": moment})
    assert written == isoformat(moment) and ISO.fullmatch(written)
    assert written.startswith("2026-12-04T14:30:52.") and written.endswith("+00:00")
