"""The ``comfyq`` command: up, api, worker, flower, sim, submit."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click


@click.group()
@click.version_option(package_name="comfyq")
def main() -> None:
    """comfyq: one job queue in front of many ComfyUI servers."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API and Flower bind to.")
@click.option("--port", default=8000, show_default=True, help="API port.")
@click.option("--flower-port", default=5555, show_default=True)
@click.option("--redis-port", default=6379, show_default=True, help="Port of the Redis started for you.")
@click.option("--sim-ports", default="8188,8189", show_default=True,
              help="Simulator ports, used only when COMFYQ_INSTANCES is unset.")
def up(host: str, port: int, flower_port: int, redis_port: int, sim_ports: str) -> None:
    """Run the whole stack on embedded defaults until Ctrl-C."""
    from .stack import Stack

    try:
        ports = tuple(int(p) for p in sim_ports.split(",") if p.strip())
    except ValueError:
        raise click.BadParameter("give ports as numbers separated by commas", param_hint="--sim-ports") from None
    sys.exit(Stack(api_port=port, flower_port=flower_port, redis_port=redis_port, host=host,
                   sim_ports=ports).run())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--threads", default=1, show_default=True,
              help="Threads per worker; above 1 uses gthread workers (keep-alive), else sync workers.")
def api(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the REST API with gunicorn."""
    # Sync workers measured twice the submit throughput of gthread here (no GIL contention
    # between request threads); put a proxy in front for keep-alive and slow clients.
    workers_class = ["--worker-class", "gthread", "--threads", str(threads)] if threads > 1 else []
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}",
                              "--workers", str(workers), *workers_class, "--access-logfile", "-",
                              "--graceful-timeout", "5", "comfyq.wsgi:app"])


@main.command()
@click.argument("instance")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(instance: str, loglevel: str) -> None:
    """Run the Celery worker that owns INSTANCE (e.g. gpu0)."""
    from .worker import start_worker

    start_worker(instance, loglevel)


@main.command()
@click.option("--port", default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
def flower(port: int, address: str) -> None:
    """Run Flower against the comfyq broker."""
    from .worker import celery_app

    celery_app.start(["flower", f"--port={port}", f"--address={address}"])


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sim(args: tuple[str, ...]) -> None:
    """Run the ComfyUI simulator (a test double); see `comfyq sim --help`."""
    from .sim.__main__ import main as sim_main

    sim_main(list(args))


def _describe(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    where = f" on {job['instance']}" if job.get("instance") else ""
    if job["status"] == "queued":
        return f"queued (position {job.get('queue_position')})"
    if progress.get("node"):
        step = f" {progress['value']}/{progress['max']}" if progress.get("max") else ""
        return (f"{job['status']}{where}: node {progress['node']} {progress.get('node_type') or ''}{step} "
                f"({progress.get('nodes_done', 0)}/{progress.get('nodes_total', '?')} nodes)")
    return f"{job['status']}{where}"


@main.command()
@click.argument("workflow", type=click.File("r"))
@click.option("--api-url", envvar="COMFYQ_API_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option("--instance", default=None, help="Pin the job to this instance.")
@click.option("--wait/--no-wait", default=False, help="Follow the job and download its outputs.")
@click.option("--out", "out_dir", default="outputs", show_default=True, type=click.Path(file_okay=False),
              help="Where --wait puts the outputs (a folder per job).")
def submit(workflow: Any, api_url: str, instance: str | None, wait: bool, out_dir: str) -> None:
    """Submit WORKFLOW (ComfyUI API-format JSON); with --wait, follow it to the end."""
    from .client import Client, ComfyqAPIError

    try:
        graph = json.load(workflow)
    except ValueError as exc:
        raise click.ClickException(f"{workflow.name} is not JSON: {exc}") from exc
    if isinstance(graph, dict) and "workflow" in graph and "instance" not in graph:
        graph = graph["workflow"]
    client = Client(api_url)
    try:
        job = client.submit(graph, instance)
        click.echo(f"job {job['id']} queued on {job['queue']}")
        if not wait:
            return
        last = ""

        def show(update: dict[str, Any]) -> None:
            nonlocal last
            line = _describe(update)
            if line != last:
                click.echo(line)
                last = line

        job = client.wait(job["id"], show)
    except ComfyqAPIError as exc:
        raise click.ClickException(str(exc)) from exc
    if job["status"] != "succeeded":
        raise click.ClickException(f"job {job['id']} {job['status']}: {(job.get('error') or {}).get('message')}")
    for output in job["outputs"]:
        click.echo(str(client.download(output, Path(out_dir) / job["id"])))
