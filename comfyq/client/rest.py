"""The REST client: submit, follow, cancel, download, upload, estimate, batch, templates."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import requests

from .errors import JobFailed, Unreachable, error_for
from .sse import Event, parse

TERMINAL = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
STREAM_READ_TIMEOUT = 60.0  # the server sends a keep-alive every 15 s
RETRY_AFTER = 3.0  # seconds before resuming a stream that ended early, as the server's retry hint says
HOLD = 10.0  # seconds ``run`` lets its submission itself wait for the job (Prefer: wait), by default


def _webhook(url: str | None, events: list[str] | None) -> dict[str, Any]:
    """Return the webhook fields of a job body (none when not given)."""
    return {k: v for k, v in (("webhook_url", url), ("webhook_events", events)) if v is not None}


class Client:
    """A client of the comfyq REST API: submit, follow, cancel, download, upload, estimate, batch."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; return its JSON, or raise the typed error it answered with."""
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, self.base_url + path, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Unreachable(self.base_url, exc) from exc
        if response.status_code >= 400:
            raise error_for(response)
        return response.json()

    def _prefer(self, wait: float | None) -> dict[str, Any]:
        """Return the request options that let a submission wait ``wait`` seconds for its end (none: no wait)."""
        if not wait or wait <= 0:
            return {}
        return {"headers": {"Prefer": f"wait={math.ceil(wait)}"}, "timeout": (self.timeout, self.timeout + wait)}

    @staticmethod
    def _body(template: str | None, params: dict[str, Any] | None, workflow: dict[str, Any] | None,
              mode: str, instance: str | None) -> dict[str, Any]:
        """Return a job body of either kind."""
        if (template is None) == (workflow is None):
            raise ValueError("give either template (with params) or workflow")
        body: dict[str, Any] = ({"workflow": workflow} if workflow is not None
                                else {"template": template, "params": params or {}, "mode": mode})
        if instance:
            body["instance"] = instance
        return body

    def submit(self, template: str | None = None, params: dict[str, Any] | None = None, *,
               workflow: dict[str, Any] | None = None, mode: str = "novice", instance: str | None = None,
               webhook_url: str | None = None, webhook_events: list[str] | None = None,
               wait: float | None = None) -> dict[str, Any]:
        """Submit a template with params, or a raw workflow; return the job (queued or pending).

        ``webhook_url`` (else your account's default) is POSTed the job's end, and ``webhook_events``
        (``started``, ``progress``) too. With ``wait``, the call itself waits up to that many seconds
        (``Prefer: wait``; the server caps it) and returns the job ended, outputs and all, if it ended by then.
        """
        body = self._body(template, params, workflow, mode, instance)
        body.update(_webhook(webhook_url, webhook_events))
        return self.post_job(body, wait)

    def post_job(self, body: dict[str, Any], wait: float | None = None) -> dict[str, Any]:
        """POST a job body as is (waiting up to ``wait`` s for its end, as ``submit`` does); return the job."""
        return self._call("POST", "/v1/jobs", json=body, **self._prefer(wait))

    def estimate(self, template: str | None = None, params: dict[str, Any] | None = None, *,
                 workflow: dict[str, Any] | None = None, mode: str = "novice",
                 instance: str | None = None) -> dict[str, Any]:
        """Return what a submission would cost and meet, creating no job."""
        return self._call("POST", "/v1/jobs:estimate", json=self._body(template, params, workflow, mode, instance))

    def batch(self, template: str, params: dict[str, Any] | None = None, *,
              variants: list[dict[str, Any]] | None = None, grid: dict[str, list[Any]] | None = None,
              mode: str = "novice", webhook_url: str | None = None,
              webhook_events: list[str] | None = None, wait: float | None = None) -> dict[str, Any]:
        """Create one job per variant or grid point (all or none); return the batch.

        With ``wait``, the call waits up to that many seconds for every job to end, as ``submit`` does.
        """
        body: dict[str, Any] = {"template": template, "params": params or {}, "mode": mode}
        body.update({k: v for k, v in (("variants", variants), ("grid", grid)) if v is not None})
        body.update(_webhook(webhook_url, webhook_events))
        return self._call("POST", "/v1/batches", json=body, **self._prefer(wait))

    def webhook(self) -> dict[str, Any]:
        """Return your default webhook and the secret that signs every delivery to you.

        Deliveries follow Standard Webhooks: verify one with
        ``standardwebhooks.Webhook(secret).verify(body, headers)``.
        """
        return self._call("GET", "/v1/account/webhook")

    def set_webhook(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        """Make ``url`` (with ``events`` besides the end) the default webhook of your jobs; return it."""
        return self._call("PUT", "/v1/account/webhook", json={"url": url, "events": events or []})

    def rotate_webhook_secret(self) -> str:
        """Replace your webhook secret; return the new one."""
        return str(self._call("POST", "/v1/account/webhook/secret")["secret"])

    def templates(self) -> list[dict[str, Any]]:
        """Return the newest version of every template, with its params."""
        return list(self._call("GET", "/v1/templates")["templates"])

    def job(self, job_id: str) -> dict[str, Any]:
        """Return a job."""
        return self._call("GET", f"/v1/jobs/{job_id}")

    def jobs(self, status: str | None = None, page: int = 1, page_size: int = 20) -> dict[str, Any]:
        """Return one page of your jobs, newest first."""
        query = {"page": page, "page_size": page_size, **({"status": status} if status else {})}
        return self._call("GET", "/v1/jobs", params=query)

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job."""
        return self._call("POST", f"/v1/jobs/{job_id}/cancel")

    def account(self) -> dict[str, Any]:
        """Return your account: balance, limits, usage, latest ledger entries."""
        return self._call("GET", "/v1/account")

    def upload(self, image: str | Path | bytes, kind: str = "image", image_id: str | None = None) -> dict[str, Any]:
        """Upload an image (a path or bytes), or a mask of the upload ``image_id``; return the upload."""
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        form = {"kind": kind, **({"image": image_id} if image_id else {})}
        name = "upload" if isinstance(image, bytes) else Path(image).name
        return self._call("POST", "/v1/uploads", data=form, files={"file": (name, data)})

    def events(self, job_id: str | None = None, last_event_id: str | None = None,
               reconnects: int = 5) -> Iterator[Event]:
        """Yield a job's events until its final one (or, with no job, all your jobs' events, forever).

        A dropped or ended connection is resumed with ``Last-Event-ID``, so no event is missed or
        repeated; after ``reconnects`` failed connections in a row the last error is raised.
        """
        path = f"/v1/jobs/{job_id}/events" if job_id else "/v1/events"
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            try:
                with self.session.get(self.base_url + path, headers=headers, stream=True,
                                      timeout=(self.timeout, STREAM_READ_TIMEOUT)) as response:
                    if response.status_code >= 400:
                        raise error_for(response)
                    failures = 0
                    for event in parse(response.iter_lines(decode_unicode=True)):
                        last_event_id = event.id if event.id is not None else last_event_id
                        yield event
                        if job_id and event.type in TERMINAL:
                            return
            except requests.RequestException as exc:  # refused, reset, timed out, cut mid-chunk
                failures += 1
                if failures > reconnects:
                    raise Unreachable(self.base_url, exc) from exc
                time.sleep(min(0.2 * 2 ** failures, RETRY_AFTER))
            else:  # ended without a final event (a restart, or a plain WSGI server ends each opening): resume
                time.sleep(RETRY_AFTER)

    def wait(self, job_id: str, on_event: Callable[[Event], None] | None = None) -> dict[str, Any]:
        """Follow a job's events until it ends, handing each to ``on_event``; return the ended job."""
        for event in self.events(job_id):
            if on_event is not None:
                on_event(event)
        return self.job(job_id)

    def run(self, template: str | None = None, params: dict[str, Any] | None = None, *,
            folder: str | Path = "outputs", on_event: Callable[[Event], None] | None = None,
            hold: float | None = None, **options: Any) -> list[Path]:
        """Submit, follow the events to the end and download every output into ``folder``/<job id>.

        The submission itself waits up to ``hold`` seconds for the job (``Prefer: wait``), so a short
        job takes one call and no event stream; by default 10 s, or 0 when ``on_event`` wants the events.
        """
        if hold is None:
            hold = 0.0 if on_event is not None else HOLD
        job = self.submit(template, params, wait=hold, **options)
        if job["status"] not in TERMINAL:
            job = self.wait(job["id"], on_event)
        if job["status"] != "succeeded":
            raise JobFailed(job)
        return [self.download(output, Path(folder) / job["id"]) for output in job["outputs"]]

    def download(self, output: dict[str, Any], folder: str | Path) -> Path:
        """Download one output of a job into ``folder``; return its path."""
        target = Path(folder) / output["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        # Only the API's own download route gets the key: a store's presigned URL carries its own
        # signature (S3 refuses a second one in a header), and no store should ever see the key.
        fetch = self.session.get if urlsplit(output["url"]).path.startswith("/v1/") else requests.get
        with fetch(output["url"], timeout=self.timeout, stream=True) as response:
            if response.status_code >= 400:
                raise error_for(response)
            with open(target, "wb") as fh:
                for chunk in response.iter_content(1 << 16):
                    fh.write(chunk)
        return target
