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
    """The API answered with its error shape."""

    def __init__(self, status: int, message: str, errors: Any = None) -> None:
        super().__init__(status, message, errors)
        self.status, self.message, self.errors = status, message, errors

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


class Client:
    """A thin client of the comfyq REST API."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                raise ComfyqAPIError(response.status_code, response.text[:200]) from None
            raise ComfyqAPIError(response.status_code, body.get("message", ""), body.get("errors"))
        return response.json()

    def submit(self, workflow: dict[str, Any], instance: str | None = None) -> dict[str, Any]:
        """Submit a raw workflow; return the queued job."""
        body: dict[str, Any] = {"workflow": workflow}
        if instance:
            body["instance"] = instance
        return self.post_job(body)

    def run_template(self, template: str, params: dict[str, Any], mode: str = "novice") -> dict[str, Any]:
        """Submit a template with parameters; return the queued job."""
        return self.post_job({"template": template, "params": params, "mode": mode})

    def post_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a job body as is; return the queued job."""
        return self._call("POST", "/v1/jobs", json=body)

    def job(self, job_id: str) -> dict[str, Any]:
        """Return a job."""
        return self._call("GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job."""
        return self._call("POST", f"/v1/jobs/{job_id}/cancel")

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

    def download(self, output: dict[str, Any], folder: str | Path) -> Path:
        """Download one output of a job into ``folder``; return its path."""
        target = Path(folder) / output["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.session.get(output["url"], timeout=self.timeout, stream=True) as response:
            response.raise_for_status()
            with open(target, "wb") as fh:
                for chunk in response.iter_content(1 << 16):
                    fh.write(chunk)
        return target
