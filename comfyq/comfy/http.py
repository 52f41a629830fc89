"""HTTP transport to one ComfyUI server: session, safe retries, error mapping."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from .errors import ComfyConnectFailed, ComfyError, ComfyProtocolError, ComfyTimeout, ComfyUnreachable

logger = logging.getLogger(__name__)

Timeout = tuple[float, float]

#: Statuses a proxy or a restarting server answers; the server never got to the work.
GATEWAY_STATUSES = frozenset({502, 503, 504})
#: How much of an unexpected body an error keeps.
BODY_EXCERPT = 500


class GetOnlyRetry(Retry):
    """Retry policy that never retries a method outside ``allowed_methods``."""

    def increment(self, method: str | None = None, *args: Any, **kwargs: Any) -> Retry:
        """Count one failure; give up at once for methods that may not be repeated."""
        # urllib3 retries connect errors whatever the method; a POST /prompt
        # must reach the server at most once, so exhaust the budget instead.
        if method is not None and method.upper() not in (self.allowed_methods or ()):
            return super(GetOnlyRetry, self.new(total=0)).increment(method, *args, **kwargs)
        return super().increment(method, *args, **kwargs)


def build_session(retries: int) -> requests.Session:
    """Build a session whose adapter retries GETs on connect errors and gateway statuses."""
    retry = GetOnlyRetry(
        total=retries,
        connect=retries,
        # False re-raises read errors as they are (ReadTimeout stays a timeout);
        # 0 would wrap them in MaxRetryError, which requests calls ConnectionError.
        read=False,
        status=retries,
        other=0,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=GATEWAY_STATUSES,
        backoff_factor=0.2,
        backoff_max=2.0,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def settle_environment(session: requests.Session, url: str) -> None:
    """Read the environment's proxies, CA bundle and netrc for ``url`` once, not at every request.

    requests reads them again for each request (all of ``os.environ``, a stat
    of the CA bundle), a millisecond or more on a busy host; a client talks to
    one server, so its answer never changes.
    """
    found = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(found["proxies"])
    if url.startswith("https:"):  # plain HTTP has no use for a CA bundle
        session.verify = found["verify"]
    session.auth = session.auth or requests.utils.get_netrc_auth(url)
    session.trust_env = False


@contextmanager
def translated_errors(url: str, timeout: Timeout) -> Iterator[None]:
    """Turn requests' exceptions raised inside the block into the ComfyError tree."""
    try:
        yield
    except requests.exceptions.ConnectTimeout as exc:
        # Before ReadTimeout/ConnectionError: it subclasses both.
        raise ComfyConnectFailed(f"connect timed out after {timeout[0]} s: {exc}", url) from exc
    except requests.exceptions.ReadTimeout as exc:
        raise ComfyTimeout(f"no answer within {timeout[1]} s", url, timeout[1]) from exc
    except (requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError) as exc:
        if exc.args and isinstance(exc.args[0], ReadTimeoutError):
            # requests reports a read timeout while streaming a body this way.
            raise ComfyTimeout(f"body stalled for {timeout[1]} s", url, timeout[1]) from exc
        if exc.args and isinstance(getattr(exc.args[0], "reason", None), NewConnectionError):
            raise ComfyConnectFailed(f"cannot connect: {exc}", url) from exc
        raise ComfyUnreachable(f"connection failed: {exc}", url) from exc
    except requests.exceptions.RequestException as exc:
        raise ComfyError(f"request failed: {exc}", url) from exc


class HttpTransport:
    """Send requests to one server with explicit timeouts and map failures."""

    def __init__(self, base_url: str, connect_timeout: float, read_timeout: float,
                 retries: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout: Timeout = (connect_timeout, read_timeout)
        self.session = build_session(retries)
        settle_environment(self.session, self.base_url)

    @contextmanager
    def capped(self, read_timeout: float | None) -> Iterator[None]:
        """Cap the read timeout of the calls made inside the block (None: no cap)."""
        saved = self.timeout
        if read_timeout is not None:
            self.timeout = (saved[0], max(min(saved[1], read_timeout), 0.05))
        try:
            yield
        finally:
            self.timeout = saved

    def url(self, path: str) -> str:
        """Return the absolute URL of a server path."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,),
                timeout: Timeout | None = None, **kwargs: Any) -> requests.Response:
        """Send one request and return the response, raising on failure or an unexpected status."""
        url = self.url(path)
        timeout = timeout or self.timeout
        logger.debug("%s %s", method, url)
        with translated_errors(url, timeout):
            response = self.session.request(method, url, timeout=timeout, **kwargs)
        if response.status_code not in ok:
            raise status_error(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request and return its decoded JSON body."""
        return decode_json(self.request(method, path, **kwargs))

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()


def excerpt(response: requests.Response) -> str:
    """Return the start of a response body for an error message."""
    try:
        return response.text[:BODY_EXCERPT]
    except Exception:  # a streamed body cut short still deserves an error
        return ""


def status_error(response: requests.Response) -> ComfyError:
    """Build the error for a response whose status the caller did not expect."""
    url, code = response.url, response.status_code
    if code in GATEWAY_STATUSES:
        return ComfyUnreachable(f"gateway status {code}", url)
    return ComfyProtocolError(f"unexpected status {code}", url, code, excerpt(response))


def decode_json(response: requests.Response) -> Any:
    """Decode a JSON body, raising ComfyProtocolError when it is not JSON."""
    try:
        return response.json()
    except ValueError as exc:
        raise ComfyProtocolError(
            f"body is not JSON (status {response.status_code})", response.url,
            response.status_code, excerpt(response)) from exc
