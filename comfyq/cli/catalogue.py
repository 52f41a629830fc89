"""``comfyq catalogue record``: save a real instance's node catalogue for the simulator to serve."""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def catalogue() -> None:
    """Node catalogues (/object_info) of ComfyUI instances."""


@catalogue.command("record")
@click.argument("url")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="File to write the catalogue to (JSON, as /object_info answers).")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for the answer.")
def record(url: str, output: str, timeout: float) -> None:
    """Save the /object_info of the ComfyUI server at URL; serve it with `comfyq up --sim-catalogue FILE`."""
    from ..comfy import ComfyClient, ComfyError

    try:
        with ComfyClient(url.rstrip("/"), connect_timeout=min(timeout, 10), read_timeout=timeout,
                         retries=1) as client:
            info = client.object_info()
    except ComfyError as exc:
        raise click.ClickException(f"cannot read {url}/object_info: {exc}") from exc
    if not info:
        raise click.ClickException(f"{url}/object_info answered no node classes")
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_text(json.dumps(info, separators=(",", ":"), sort_keys=True), encoding="utf-8")
    partial.replace(target)  # never leave a half-written catalogue under the real name
    click.echo(f"recorded {len(info)} node classes from {url} to {target}")
