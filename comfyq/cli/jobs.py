"""``comfyq jobs`` and ``comfyq upload``: your jobs and images through the API, with your key."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click

API_OPTIONS = [
    click.option("--api-url", envvar="COMFYQ_API_URL", default="http://127.0.0.1:8000", show_default=True),
    click.option("--api-key", envvar="COMFYQ_API_KEY", default=None, help="Your API key (or set COMFYQ_API_KEY)."),
]


def with_api(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --api-url and --api-key to a command."""
    for option in reversed(API_OPTIONS):
        command = option(command)
    return command


def call(api_url: str, api_key: str | None, action: Callable[[Any], Any]) -> Any:
    """Run ``action`` with a client; print an API error as a click error."""
    from ..client import Client, ComfyqAPIError

    try:
        return action(Client(api_url, api_key))
    except ComfyqAPIError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def jobs() -> None:
    """List, show, cancel and download your jobs."""


@jobs.command("list")
@click.option("--status", default=None, help="Only jobs in this state (pending, queued, running, succeeded…).")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@with_api
def jobs_list(status: str | None, page: int, api_url: str, api_key: str | None) -> None:
    """List your jobs, newest first: id, status, template, created."""
    found = call(api_url, api_key, lambda c: c.jobs(status, page))
    for job in found["items"]:
        click.echo(f"{job['id']}  {job['status']:<9}  {job['template'] or 'workflow':<14}  {job['created_at']}")
    click.echo(f"page {found['page']}, {found['total']} jobs in all")


@jobs.command("show")
@click.argument("job_id")
@with_api
def jobs_show(job_id: str, api_url: str, api_key: str | None) -> None:
    """Print a job as JSON."""
    click.echo(json.dumps(call(api_url, api_key, lambda c: c.job(job_id)), indent=2))


@jobs.command("cancel")
@click.argument("job_id")
@with_api
def jobs_cancel(job_id: str, api_url: str, api_key: str | None) -> None:
    """Cancel a job (pending or queued: it never runs; running: it is interrupted)."""
    job = call(api_url, api_key, lambda c: c.cancel(job_id))
    click.echo(f"job {job['id']} {job['status']}")


@jobs.command("download")
@click.argument("job_id")
@click.option("--out", "out_dir", default="outputs", show_default=True, type=click.Path(file_okay=False),
              help="The folder to put them in (a folder per job inside).")
@with_api
def jobs_download(job_id: str, out_dir: str, api_url: str, api_key: str | None) -> None:
    """Download every output of a finished job; print each file's path."""
    def fetch(client: Any) -> list[Path]:
        job = client.job(job_id)
        if not job["outputs"]:
            raise click.ClickException(f"job {job_id} is {job['status']} and has no outputs")
        return [client.download(output, Path(out_dir) / job_id) for output in job["outputs"]]

    for path in call(api_url, api_key, fetch):
        click.echo(str(path))


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--mask-of", "image_id", default=None, help="Upload FILE as the mask of this image upload.")
@with_api
def upload(file: str, image_id: str | None, api_url: str, api_key: str | None) -> None:
    """Upload an image (or a mask) once; print its id, to give as a template's image or mask param."""
    kind = "mask" if image_id else "image"
    found = call(api_url, api_key, lambda c: c.upload(file, kind, image_id))
    click.echo(f"{found['id']}  {kind} {found['width']}×{found['height']}  sha256 {found['sha256'][:12]}…")
