"""The ``comfyq`` command: up, api, worker, beat, webhooks, flower, sim, submit, jobs, upload, users, keys, mcp."""
from __future__ import annotations

import base64
import json
import mimetypes
import os
import sys
from pathlib import Path
from typing import Any

import click

from .accounts import keys, users
from .agents import mcp
from .catalogue import catalogue
from .credits import credits
from .jobs import jobs, upload, with_api
from .templates import templates


class Commands(click.Group):
    """The ``comfyq`` group: an API that cannot be reached is one line on stderr, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            # Looked up, not imported: the long-running commands (up, api's supervisor) never load requests.
            requests = sys.modules.get("requests")
            if requests is not None and isinstance(exc, requests.RequestException):
                raise click.ClickException(str(exc)) from exc  # the client's Unreachable says where it looked
            raise


@click.group(cls=Commands)
@click.version_option(package_name="comfyq")
def main() -> None:
    """comfyq: one job queue in front of many ComfyUI servers."""


main.add_command(users)
main.add_command(keys)
main.add_command(credits)
main.add_command(jobs)
main.add_command(upload)
main.add_command(templates)
main.add_command(catalogue)
main.add_command(mcp)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API and Flower bind to.")
@click.option("--port", default=8000, show_default=True, help="API port.")
@click.option("--flower-port", default=5555, show_default=True)
@click.option("--redis-port", default=6379, show_default=True, help="Port of the Redis started for you.")
@click.option("--sim-ports", default="8188,8189", show_default=True,
              help="Simulator ports, used only when COMFYQ_INSTANCES is unset.")
@click.option("--sim-catalogue", default=None, type=click.Path(exists=True, dir_okay=False),
              help="A recorded /object_info (comfyq catalogue record) for the simulators to serve.")
@click.option("--api-workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="API processes (one holds thousands of event streams; each more costs about 90 MB).")
def up(host: str, port: int, flower_port: int, redis_port: int, sim_ports: str, sim_catalogue: str | None,
       api_workers: int) -> None:
    """Run the whole stack on embedded defaults until Ctrl-C."""
    from .stack import Stack

    try:
        ports = tuple(int(p) for p in sim_ports.split(",") if p.strip())
    except ValueError:
        raise click.BadParameter("give ports as numbers separated by commas", param_hint="--sim-ports") from None
    sys.exit(Stack(api_port=port, flower_port=flower_port, redis_port=redis_port, host=host,
                   sim_ports=ports, sim_catalogue=sim_catalogue, api_workers=api_workers).run())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", default=2, show_default=True, help="API processes.")
@click.option("--threads", envvar="COMFYQ_API_THREADS", type=click.IntRange(min=1), default=None,
              help="Request threads per process (event streams need none: they are coroutines)  "
                   "[default: 1 on SQLite, else 4]")
@click.option("--log-config", envvar="UVICORN_LOG_CONFIG", default=None, type=click.Path(dir_okay=False),
              help="A logging configuration file for uvicorn (JSON, YAML or ini).")
def api(host: str, port: int, workers: int, threads: int | None, log_config: str | None) -> None:
    """Serve the REST API and its event streams with uvicorn (ASGI)."""
    import uvicorn

    if threads is not None:
        os.environ["COMFYQ_API_THREADS"] = str(threads)
    options = {"log_config": log_config} if log_config else {}
    # The protocol is named by its import path so that uvicorn's worker processes import it themselves.
    uvicorn.run("comfyq.asgi:app", host=host, port=port, workers=workers, loop="uvloop",
                http="comfyq.api.server_protocol:TimedHttpProtocol", timeout_graceful_shutdown=3,
                server_header=False, **options)


@main.command()
@click.argument("instance")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--comfy-cmd", envvar="COMFYQ_COMFY_CMD", default=None,
              help="Start and own this ComfyUI process (e.g. \"python main.py --port 8188 --cuda-device 0\"); "
                   "it must serve the instance's configured URL.")
@click.option("--comfy-log", default=None, type=click.Path(dir_okay=False), help="Append its output here.")
@click.option("--comfy-ready-timeout", default=300.0, show_default=True, help="Seconds to wait for it to answer.")
@click.option("--comfy-max-jobs", envvar="COMFYQ_COMFY_MAX_JOBS", default=0, show_default=True,
              help="Restart it, when idle, after this many jobs (0: never).")
@click.option("--comfy-max-rss-mb", envvar="COMFYQ_COMFY_MAX_RSS_MB", default=0.0, show_default=True,
              help="Restart it, when idle, once its memory (RSS, with children) exceeds this (0: never).")
@click.option("--comfy-free-after-idle", envvar="COMFYQ_COMFY_FREE_AFTER_IDLE", default=0.0, show_default=True,
              help="POST /free (unload models) after this many idle seconds (0: never).")
def worker(instance: str, loglevel: str, comfy_cmd: str | None, comfy_log: str | None,
           comfy_ready_timeout: float, comfy_max_jobs: int, comfy_max_rss_mb: float,
           comfy_free_after_idle: float) -> None:
    """Run the Celery worker that owns INSTANCE (e.g. gpu0), and with --comfy-cmd its ComfyUI too."""
    from ..worker.supervisor import ComfySupervisor, SupervisorError
    from .gpu_worker import flask_app, start

    supervisor = None
    if comfy_cmd:
        known = flask_app.config["INSTANCES"].get(instance)
        if known is None:
            raise click.BadParameter(f"unknown instance {instance!r}", param_hint="INSTANCE")
        supervisor = ComfySupervisor(comfy_cmd, known.url, name=instance, ready_timeout=comfy_ready_timeout,
                                     max_jobs=comfy_max_jobs, max_rss_bytes=int(comfy_max_rss_mb * 2 ** 20),
                                     free_after_idle=comfy_free_after_idle, log_path=comfy_log)
    try:
        start(instance, loglevel, supervisor)
    except SupervisorError as exc:
        raise click.ClickException(f"ComfyUI for {instance} did not start: {exc}") from exc


@main.command()
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--webhooks/--no-webhooks", default=False, show_default=True,
              help="Be the webhooks worker too (comfyq up does: one process fewer).")
def beat(loglevel: str, webhooks: bool) -> None:
    """Run the control worker with Celery beat on a thread: the reconciler's passes."""
    from .beat import start

    start(loglevel, webhooks)


@main.command()
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=None,
              help="Deliveries sent at once (threads)  [default: COMFYQ_WEBHOOK_CONCURRENCY, 8]")
def webhooks(loglevel: str, concurrency: int | None) -> None:
    """Run the webhooks worker: signed deliveries from the webhooks queue, with retries (no GPU)."""
    from .webhooks_worker import start

    start(loglevel, concurrency)


@main.command()
@click.option("--port", default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--user", envvar="COMFYQ_FLOWER_USER", default="admin", show_default=True,
              help="Basic-auth user name of pages and /api.")
@click.option("--password", envvar="COMFYQ_FLOWER_PASSWORD", default=None,
              help="Basic-auth password (prefer the variable COMFYQ_FLOWER_PASSWORD)  [default: none on loopback, "
                   "else generated into the data dir]")
def flower(port: int, address: str, user: str, password: str | None) -> None:
    """Run Flower against the comfyq broker: every queue listed, basic auth beyond loopback."""
    from ..config.settings import Config
    from .flower_server import celery_for, serve

    config = Config().as_dict()  # no Flask app: Flower needs the broker and the queues alone
    serve(celery_for(config), address, port, user, password, Path(config["DATA_DIR"]))


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sim(args: tuple[str, ...]) -> None:
    """Run the ComfyUI simulator (a test double); see `comfyq sim --help`."""
    # Its own process image: only templates may import the simulator, the command only starts it.
    os.execv(sys.executable, [sys.executable, "-m", "comfyq.sim", *args])


def _param(text: str) -> tuple[str, Any]:
    """Parse ``name=value``: JSON if it parses, ``@file`` for an image, else the plain string."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{text!r}: write name=value", param_hint="-p")
    if raw.startswith("@"):
        path = Path(raw[1:])
        if not path.is_file():
            raise click.BadParameter(f"{raw[1:]!r} is not a file", param_hint="-p")
        mime = mimetypes.guess_type(path.name)[0] or "image/png"
        return name, f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


@main.command()
@click.argument("what")
@click.option("-p", "--param", "params", multiple=True, help="Template parameter name=value (repeatable); "
              "name=@file.png sends an image.")
@click.option("--mode", type=click.Choice(["novice", "expert"]), default="novice", show_default=True)
@click.option("--instance", default=None, help="Pin the job to this instance.")
@with_api
@click.option("--wait/--no-wait", default=False,
              help="Follow the job live (a progress bar on stderr) and download its outputs.")
@click.option("--hold", type=click.IntRange(min=0), default=0, show_default=True, metavar="SECONDS",
              help="Let the submission itself wait up to SECONDS for the job (Prefer: wait): a job done by then "
                   "is downloaded at once, with no progress bar; a longer one is followed as with --wait. "
                   "Implies --wait.")
@click.option("--out", "out_dir", default="outputs", show_default=True, type=click.Path(file_okay=False),
              help="Where --wait puts the outputs (a folder per job).")
def submit(what: str, params: tuple[str, ...], mode: str, api_url: str, api_key: str | None,
           instance: str | None, wait: bool, hold: int, out_dir: str) -> None:
    """Submit WHAT: a template (txt2img, txt2img@2) with -p params, or a workflow JSON file."""
    from .progress_bar import JobProgress
    from ..client import TERMINAL, Client, ComfyqAPIError

    body: dict[str, Any]
    if not Path(what).is_file() and ("/" in what or os.sep in what or what.endswith(".json")):
        raise click.BadParameter(f"no such file: {what} (looked in {Path.cwd()}); give a workflow file's path, "
                                 "or a template's name such as txt2img", param_hint="WHAT")
    if Path(what).is_file():
        try:
            graph = json.loads(Path(what).read_text())
        except ValueError as exc:
            raise click.ClickException(f"{what} is not JSON: {exc}") from exc
        body = {"workflow": graph["workflow"] if isinstance(graph, dict) and "workflow" in graph else graph}
        if params:
            raise click.BadParameter("-p goes with a template, not a workflow file", param_hint="-p")
    else:
        body = {"template": what, "params": dict(_param(p) for p in params), "mode": mode}
    if instance:
        body["instance"] = instance
    client = Client(api_url, api_key)
    try:
        job = client.post_job(body, wait=hold)
        click.echo(f"job {job['id']} {job['status'] if job['status'] in TERMINAL else 'queued'} on {job['queue']}")
        if not (wait or hold):
            return
        if job["status"] not in TERMINAL:
            with JobProgress(job["id"]) as show:
                job = client.wait(job["id"], show)
    except ComfyqAPIError as exc:
        raise click.ClickException(str(exc)) from exc
    if job["status"] != "succeeded":
        raise click.ClickException(f"job {job['id']} {job['status']}: {(job.get('error') or {}).get('message')}")
    for output in job["outputs"]:
        click.echo(str(client.download(output, Path(out_dir) / job["id"])))
