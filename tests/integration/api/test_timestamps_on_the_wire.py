"""Every timestamp the API, its event streams and its webhooks send is ISO 8601 in UTC with ``+00:00``."""
from __future__ import annotations

import json
import re
import time
from typing import Any, Iterator

import pytest
import redis

from comfyq.api.fields import TIMESTAMP_PATTERN
from comfyq.db.extensions import db
from comfyq.fleet.instances import STATUS_KEY
from comfyq.db.models import WebhookDelivery
from tests.integration.seeded import Seeded, seed

ISO = re.compile(TIMESTAMP_PATTERN)
DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}")  # anything that starts like a date is checked


@pytest.fixture(scope="module")
def seeded(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed(redis_url.rsplit("/", 1)[0] + "/8", tmp_path_factory.mktemp("timestamps"))


def dated(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Yield (key, value) for every string in a JSON document that starts like a date."""
    if isinstance(value, dict):
        for name, inner in value.items():
            yield from dated(inner, name)
    elif isinstance(value, list):
        for inner in value:
            yield from dated(inner, key)
    elif isinstance(value, str) and DATE_LIKE.match(value):
        yield key, value


def test_every_listing_and_detail_says_its_offset(seeded: Seeded) -> None:
    admin = seeded.client()
    r = redis.Redis.from_url(seeded.app.config["REDIS_URL"])
    r.hset(STATUS_KEY.format("gpu0"), mapping={"checked_at": time.time(), "last_seen": time.time() - 3})
    issued = admin.post(f"/v1/admin/users/{seeded.user}/keys", json={"label": "spare"}).get_json()
    documents = [
        admin.get("/v1/admin/users").get_json(), issued, admin.post(f"/v1/admin/keys/{issued['id']}/revoke").get_json(),
        admin.get(f"/v1/admin/users/{seeded.user}/ledger").get_json(), admin.get("/v1/account").get_json(),
        admin.get("/v1/jobs?page_size=100").get_json(), admin.get(f"/v1/jobs/{seeded.job_id}").get_json(),
        admin.get(f"/v1/batches/{seeded.batch_id}").get_json(), admin.get(f"/v1/uploads/{seeded.upload_id}").get_json(),
        admin.post(f"/v1/jobs/{seeded.queued_job_id}/cancel").get_json(), admin.get("/v1/instances").get_json(),
    ]
    stream = admin.get(f"/v1/jobs/{seeded.job_id}/events").get_data(as_text=True)
    documents += [json.loads(line[len("data: "):]) for line in stream.splitlines() if line.startswith("data: ")]
    with seeded.app.app_context():
        documents += [d.payload for d in db.session.scalars(db.select(WebhookDelivery))]
    found = [pair for document in documents for pair in dated(document)]
    assert [pair for pair in found if not ISO.fullmatch(pair[1])] == []
    assert {"created_at", "revoked_at", "started_at", "finished_at", "next_attempt_at", "at", "checked_at",
            "last_seen", "created"} <= {key for key, _ in found}
