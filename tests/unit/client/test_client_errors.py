"""The Python client turns the API's one error shape into typed exceptions."""
from __future__ import annotations

import json

import pytest
import requests

from comfyq import client


def answer(status: int, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    """Build a response as the API would send it."""
    response = requests.Response()
    response.status_code = status
    response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize("status, kind", [
    (400, client.BadRequest), (401, client.Unauthorized), (402, client.PaymentRequired), (403, client.Forbidden),
    (404, client.NotFound), (409, client.Conflict), (410, client.Gone), (413, client.TooLarge),
    (422, client.Invalid), (429, client.RateLimited), (503, client.Unavailable), (418, client.ComfyqAPIError),
])
def test_each_status_has_its_exception(status: int, kind: type[client.ComfyqAPIError]) -> None:
    error = client.error_for(answer(status, {"code": status, "status": "x", "message": "what to fix",
                                             "errors": {"balance": 0, "cost": 1}}))
    assert type(error) is kind and isinstance(error, client.ComfyqAPIError)
    assert (error.status, error.message, error.errors) == (status, "what to fix", {"balance": 0, "cost": 1})
    assert str(error) == f"{status}: what to fix"


def test_retry_after_and_non_json_bodies() -> None:
    limited = client.error_for(answer(429, {"message": "slow down", "errors": {}}, {"Retry-After": "17"}))
    assert isinstance(limited, client.RateLimited) and limited.retry_after == 17.0
    proxy = client.error_for(answer(502, b"<html>Bad Gateway</html>"))
    assert proxy.status == 502 and "Bad Gateway" in proxy.message and proxy.retry_after is None
    listed = client.error_for(answer(503, ["not", "our", "shape"]))
    assert isinstance(listed, client.Unavailable) and listed.message == "['not', 'our', 'shape']"


def test_a_body_needs_exactly_one_kind_of_work() -> None:
    with pytest.raises(ValueError, match="either template"):
        client.Client._body(None, None, None, "novice", None)
    with pytest.raises(ValueError, match="either template"):
        client.Client._body("txt2img", {}, {"1": {}}, "novice", None)
    assert client.Client._body("txt2img", None, None, "expert", "gpu0") == {
        "template": "txt2img", "params": {}, "mode": "expert", "instance": "gpu0"}
