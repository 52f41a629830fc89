"""``comfyq templates``: list, show and check the workflow templates."""
from __future__ import annotations

import json
import sys
from typing import Any

import click


@click.group()
def templates() -> None:
    """Inspect and check the workflow templates."""


def _store() -> Any:
    """Load the template store, or exit saying which template is broken."""
    from ..config.settings import Config
    from ..templates import TemplateError
    from ..templates.deployment import open_store

    try:
        return open_store(Config().as_dict())
    except TemplateError as exc:
        raise click.ClickException(f"{exc} (run `comfyq templates check` for every problem)") from exc


@templates.command("list")
def templates_list() -> None:
    """List every template version with its description."""
    for template in _store().all():
        click.echo(f"{template.ref:<24} {template.description}")


@templates.command("show")
@click.argument("ref")
def templates_show(ref: str) -> None:
    """Show one template (name or name@version) as JSON."""
    from ..errors import ComfyqError

    try:
        click.echo(json.dumps(_store().get(ref).describe(), indent=2))
    except ComfyqError as exc:
        raise click.ClickException(exc.message) from exc


@templates.command("check")
@click.option("--live/--no-live", default=True, show_default=True,
              help="Also check against the object_info of every reachable configured instance.")
def templates_check(live: bool) -> None:
    """Validate every template; exit 1 listing each problem."""
    from ..comfy import ComfyClient, ComfyError
    from ..config.settings import Config
    from ..templates.deployment import check_store, deployment_catalogue

    config = Config()
    catalogues = {"configured": deployment_catalogue(config.TEMPLATE_CATALOGUE)}
    for instance in config.INSTANCES.values() if live else ():
        try:
            with ComfyClient(instance.url, connect_timeout=2, read_timeout=10, retries=0) as client:
                catalogues[instance.name] = client.object_info()
        except ComfyError as exc:
            click.echo(f"skipping {instance.name}: {exc}", err=True)
    problems = [f"[{name}] {p}" for name, cat in catalogues.items() for p in check_store(config.as_dict(), cat)]
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    click.echo(f"templates in {config.TEMPLATES_DIR}: all good against {', '.join(catalogues)}")
