"""Standard Webhooks signatures: what comfyq signs, the standardwebhooks package verifies; nothing else does."""
from __future__ import annotations

import base64
import time
from datetime import datetime, timezone
from typing import Callable

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from comfyq.webhooks import standard

BODY = b'{"id":"d1","event":"succeeded","job_id":"j1","status":"succeeded"}'


def test_the_published_example_vector() -> None:
    # The example of the specification (and of svix, which wrote it).
    assert standard.signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                              1614265330, b'{"test": 2432232314}') == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_fixed_vector_matches_the_standardwebhooks_package() -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    at = 1_700_000_000
    expected = Webhook(secret).sign("d1", datetime.fromtimestamp(at, tz=timezone.utc), BODY)
    assert standard.headers(secret, "d1", BODY, at) == {
        "webhook-id": "d1", "webhook-timestamp": "1700000000", "webhook-signature": expected}


def test_fresh_headers_verify_with_the_package_and_a_new_secret() -> None:
    secret = standard.new_secret()
    assert secret.startswith("whsec_") and len(standard.key(secret)) == 32
    assert standard.new_secret() != secret
    assert Webhook(secret).verify(BODY, standard.headers(secret, "d1", BODY)) == {
        "id": "d1", "event": "succeeded", "job_id": "j1", "status": "succeeded"}


@pytest.mark.parametrize("change", [
    lambda h: {**h, "webhook-id": "d2"},  # another delivery's id
    lambda h: {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)},
    lambda h: {k: v for k, v in h.items() if k != "webhook-id"},
])
def test_a_changed_header_does_not_verify(change: Callable[[dict[str, str]], dict[str, str]]) -> None:
    secret = standard.new_secret()
    headers = standard.headers(secret, "d1", BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, change(headers))


def test_another_secret_an_altered_body_or_a_stale_timestamp_does_not_verify() -> None:
    secret = standard.new_secret()
    headers = standard.headers(secret, "d1", BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(standard.new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"succeeded", b"failed", 1), headers)
    with pytest.raises(WebhookVerificationError):  # a replay, ten minutes on
        Webhook(secret).verify(BODY, standard.headers(secret, "d1", BODY, int(time.time()) - 600))


@pytest.mark.parametrize("secret", ["", "whsec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_a-b_c", "whsec_abc"])
def test_a_secret_not_in_the_standard_form_is_refused(secret: str) -> None:
    with pytest.raises(ValueError):
        standard.key(secret)
