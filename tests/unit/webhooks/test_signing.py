"""Webhook signatures: what comfyq signs, a receiver verifies; anything changed, stale or malformed does not."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from comfyq.webhooks import signing

SECRET = "whsec_test"
BODY = b'{"id":"d1","event":"succeeded","job_id":"j1","status":"succeeded"}'


def test_the_header_is_the_documented_hmac_of_timestamp_dot_body() -> None:
    header = signing.sign(SECRET, BODY, 1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_a_fresh_signature_verifies() -> None:
    header = signing.sign(SECRET, BODY)
    assert signing.verify(SECRET, BODY, header)
    assert signing.verify(SECRET, BODY.decode(), header)  # the body as text is the same bytes


@pytest.mark.parametrize("body, secret", [
    (BODY.replace(b"succeeded", b"failed", 1), SECRET),  # tampered body
    (BODY + b" ", SECRET),  # one byte more
    (BODY, "whsec_other"),  # another user's (or a rotated) secret
])
def test_a_changed_body_or_another_secret_does_not_verify(body: bytes, secret: str) -> None:
    assert not signing.verify(secret, body, signing.sign(SECRET, BODY))


def test_a_tampered_timestamp_does_not_verify() -> None:
    header = signing.sign(SECRET, BODY, 1_700_000_000)
    moved = header.replace("t=1700000000", "t=1700000100")
    assert not signing.verify(SECRET, BODY, moved, now=1_700_000_100)


def test_stale_and_future_signatures_are_refused_within_the_tolerance_only() -> None:
    header = signing.sign(SECRET, BODY, 1_700_000_000)
    assert signing.verify(SECRET, BODY, header, now=1_700_000_300)
    assert not signing.verify(SECRET, BODY, header, now=1_700_000_301)  # a replay, 5 min later
    assert not signing.verify(SECRET, BODY, header, now=1_699_999_699)  # from a clock far ahead
    assert signing.verify(SECRET, BODY, header, tolerance=3600, now=1_700_003_000)


@pytest.mark.parametrize("header", [
    "", "garbage", "t=1700000000", "v1=abc", "t=abc,v1=abc", "t=1700000000,t=1700000000,v1=abc",
    "t=-5,v1=abc", "t=1700000000,v1=é", "t=\u00b2,v1=abc", "t=1" + "0" * 30 + ",v1=abc",
])
def test_malformed_headers_are_refused_not_raised(header: str) -> None:
    assert not signing.verify(SECRET, BODY, header, now=1_700_000_000)


def test_any_of_several_v1_signatures_may_match() -> None:
    good = signing.sign(SECRET, BODY, 1_700_000_000)
    header = f"t=1700000000,v1={'0' * 64},{good.split(',')[1]}"
    assert signing.verify(SECRET, BODY, header, now=1_700_000_000)
    assert signing.parse(header) == (1_700_000_000, ["0" * 64, good.split("v1=")[1]])
