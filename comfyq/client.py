"""Python client of the comfyq API (used by ``comfyq submit``)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import requests

TERMINAL = frozenset({"succeeded", "failed", "timed_out", "cancelled"})


def describe(job: dict[str, Any]) -> str:
    """Return a one-line summary of where a job stands, for people watching it."""
    progress = job.get("progress") or {}
    where = f" on {job['instance']}" if job.get("instance") else ""
    if job["status"] in ("pending", "queued"):
        return f"{job['status']} ({job.get('queue_position')} ahead)"
    if progress.get("node"):
        step = f" {progress['value']}/{progress['max']}" if progress.get("max") else ""
        name = progress.get("label") or progress.get("node_type") or ""
        return (f"{job['status']}{where}: node {progress['node']} {name}{step} "
                f"({progress.get('nodes_done', 0)}/{progress.get('nodes_total', '?')} nodes)")
    return f"{job['status']}{where}"


class ComfyqAPIError(Exception):
    """The API answered with its error shape; subclasses name the status.

    ::

        ComfyqAPIError
         ├── BadRequest 400, Invalid 422     fix the request as ``message`` says
         ├── Unauthorized 401, Forbidden 403  the key is unknown, or its role may not
         ├── PaymentRequired 402              .errors has balance and cost
         ├── NotFound 404, Gone 410           no such thing for you, or its output expired
         ├── Conflict 409                     the job's state forbids it
         ├── TooLarge 413                     an upload over the cap
         ├── RateLimited 429                  .retry_after seconds, when the API says
         └── Unavailable 503                  try again later
    """

    def __init__(self, status: int, message: str, errors: Any = None, retry_after: float | None = None) -> None:
        super().__init__(status, message, errors)
        self.status, self.message, self.errors, self.retry_after = status, message, errors, retry_after

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


class BadRequest(ComfyqAPIError):
    """400: the request could not be read."""


class Unauthorized(ComfyqAPIError):
    """401: no usable API key."""


class PaymentRequired(ComfyqAPIError):
    """402: the balance does not cover the cost."""


class Forbidden(ComfyqAPIError):
    """403: the key's role may not do this."""


class NotFound(ComfyqAPIError):
    """404: no such job, batch, output or upload of yours."""


class Conflict(ComfyqAPIError):
    """409: the job's state forbids the operation."""


class Gone(ComfyqAPIError):
    """410: the output is no longer stored."""


class TooLarge(ComfyqAPIError):
    """413: the upload or body is too large."""


class Invalid(ComfyqAPIError):
    """422: the request cannot be run as given."""


class RateLimited(ComfyqAPIError):
    """429: a per-user limit is reached."""


class Unavailable(ComfyqAPIError):
    """503: a backing service is down; nothing was written."""


class JobFailed(Exception):
    """A job ``run`` waited for ended without succeeding; ``.job`` is how it ended."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(f"job {job['id']} {job['status']}: {(job.get('error') or {}).get('message')}")
        self.job = job


ERRORS: dict[int, type[ComfyqAPIError]] = {400: BadRequest, 401: Unauthorized, 402: PaymentRequired, 403: Forbidden,
                                           404: NotFound, 409: Conflict, 410: Gone, 413: TooLarge, 422: Invalid,
                                           429: RateLimited, 503: Unavailable}


def error_for(response: requests.Response) -> ComfyqAPIError:
    """Return the typed exception of an error answer."""
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text[:200]}
    retry = response.headers.get("Retry-After")
    kind = ERRORS.get(response.status_code, ComfyqAPIError)
    return kind(response.status_code, body.get("message", ""), body.get("errors"),
                float(retry) if retry and retry.isdigit() else None)


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
        response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        if response.status_code >= 400:
            raise error_for(response)
        return response.json()

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
               workflow: dict[str, Any] | None = None, mode: str = "novice",
               instance: str | None = None) -> dict[str, Any]:
        """Submit a template with params, or a raw workflow; return the job (queued or pending)."""
        return self.post_job(self._body(template, params, workflow, mode, instance))

    def post_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a job body as is; return the job."""
        return self._call("POST", "/v1/jobs", json=body)

    def estimate(self, template: str | None = None, params: dict[str, Any] | None = None, *,
                 workflow: dict[str, Any] | None = None, mode: str = "novice",
                 instance: str | None = None) -> dict[str, Any]:
        """Return what a submission would cost and meet, creating no job."""
        return self._call("POST", "/v1/jobs:estimate", json=self._body(template, params, workflow, mode, instance))

    def batch(self, template: str, params: dict[str, Any] | None = None, *,
              variants: list[dict[str, Any]] | None = None, grid: dict[str, list[Any]] | None = None,
              mode: str = "novice") -> dict[str, Any]:
        """Create one job per variant or grid point (all or none); return the batch."""
        body: dict[str, Any] = {"template": template, "params": params or {}, "mode": mode}
        body.update({k: v for k, v in (("variants", variants), ("grid", grid)) if v is not None})
        return self._call("POST", "/v1/batches", json=body)

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

    def wait(self, job_id: str, on_update: Callable[[dict[str, Any]], None] | None = None,
             interval: float = 0.2, timeout: float | None = None) -> dict[str, Any]:
        """Poll a job until it is terminal; return it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in TERMINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(interval)

    def run(self, template: str | None = None, params: dict[str, Any] | None = None, *,
            folder: str | Path = "outputs", **options: Any) -> list[Path]:
        """Submit, wait for the end and download every output into ``folder``/<job id>; return the files."""
        job = self.wait(self.submit(template, params, **options)["id"])
        if job["status"] != "succeeded":
            raise JobFailed(job)
        return [self.download(output, Path(folder) / job["id"]) for output in job["outputs"]]

    def download(self, output: dict[str, Any], folder: str | Path) -> Path:
        """Download one output of a job into ``folder``; return its path."""
        target = Path(folder) / output["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        # A presigned store URL carries its own signature; S3 refuses a second one in a header.
        fetch = requests.get if "X-Amz-Signature=" in output["url"] else self.session.get
        with fetch(output["url"], timeout=self.timeout, stream=True) as response:
            if response.status_code >= 400:
                raise error_for(response)
            with open(target, "wb") as fh:
                for chunk in response.iter_content(1 << 16):
                    fh.write(chunk)
        return target
