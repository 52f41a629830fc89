"""docker/compose.control.yml, docker/compose.gpu-host.yml and docker/fleet.env.example, read as Compose reads them.

``docker-compose config`` runs with an environment built here, never the
suite's own (CI sets variables, other tests may leave COMFYQ_* ones behind),
and with fleet.env.example standing for the operator's fleet.env.
"""
from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import docutils.core
import pytest
import yaml

from comfyq.cli.main import main
from comfyq.config.settings import Config
from comfyq.config.table import SETTINGS

DOCKER = Path(__file__).resolve().parents[3] / "docker"
EXAMPLE = DOCKER / "fleet.env.example"
HOSTS = {"a": "10.0.0.11", "b": "10.0.0.12"}  # the GPU hosts fleet.env.example lists
RUNNING_COMFYQ = {"control": {"api", "beat", "webhooks", "flower"}, "gpu-host": {"worker-gpu0", "worker-gpu1"}}


def compose_config(name: str, **variables: str) -> dict[str, Any]:
    """Return ``docker-compose config`` of docker/compose.NAME.yml, with fleet.env.example and ``variables``."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: scripts/test.sh installs Debian's package"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "FLEET_ENV": EXAMPLE.name, **variables}
    done = subprocess.run([binary, "--env-file", str(EXAMPLE), "-f", str(DOCKER / f"compose.{name}.yml"), "config"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def control() -> dict[str, Any]:
    return compose_config("control")


@pytest.fixture(scope="module")
def gpu_hosts() -> dict[str, dict[str, Any]]:
    return {host: compose_config("gpu-host", GPU_HOST=host, GPU_ADDR=addr) for host, addr in HOSTS.items()}


def example() -> dict[str, str]:
    """Return fleet.env.example's variables."""
    lines = EXAMPLE.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def settings_of(service: dict[str, Any]) -> Config:
    """Load comfyq's settings from a service's environment alone, as its container would."""
    return Config({k: str(v) for k, v in service["environment"].items()})


def parse_command(argv: list[str]) -> click.Context:
    """Parse a service's command as the comfyq CLI would, without running it; fail on anything it refuses."""
    assert argv[0] == "comfyq", argv
    with main.make_context("comfyq", argv[1:2], resilient_parsing=False) as parent:
        command = main.get_command(parent, argv[1])
        assert command is not None, f"comfyq has no command {argv[1]!r}"
        return command.make_context(argv[1], list(argv[2:]), parent=parent)


def test_each_host_runs_only_its_part(control: dict[str, Any], gpu_hosts: dict[str, dict[str, Any]]) -> None:
    assert set(control["services"]) == {"redis", "postgres", "minio", "bucket", *RUNNING_COMFYQ["control"]}
    for host in gpu_hosts.values():
        assert set(host["services"]) == {"comfyui-gpu0", "comfyui-gpu1", *RUNNING_COMFYQ["gpu-host"]}


def test_every_comfyq_service_runs_a_real_command_whose_settings_load(
        control: dict[str, Any], gpu_hosts: dict[str, dict[str, Any]]) -> None:
    files = {"control": control, **{f"gpu-host {h}": c for h, c in gpu_hosts.items()}}
    for label, config in files.items():
        for name in RUNNING_COMFYQ["control" if label == "control" else "gpu-host"]:
            service = config["services"][name]
            assert service["build"]["dockerfile"] == "docker/Dockerfile", (label, name)
            ctx = parse_command(service["command"])
            settings = settings_of(service)
            assert settings.STORAGE == "s3" and settings.S3_BUCKET, (label, name)
            assert settings.SQLALCHEMY_DATABASE_URI.startswith("postgresql+psycopg://"), (label, name)
            if ctx.info_name == "worker":
                assert ctx.params["instance"] in settings.INSTANCES, (label, name)


def test_no_volume_is_shared_and_comfyq_services_mount_none(
        control: dict[str, Any], gpu_hosts: dict[str, dict[str, Any]]) -> None:
    for config, names in ((control, RUNNING_COMFYQ["control"]), *((c, RUNNING_COMFYQ["gpu-host"])
                                                                   for c in gpu_hosts.values())):
        for name in names:
            assert not config["services"][name].get("volumes"), name  # outputs live in the bucket
    for host in gpu_hosts.values():
        assert not set(host.get("volumes", {})) & set(control.get("volumes", {}))


def test_every_host_sees_the_same_fleet_and_the_workers_find_their_comfyui(
        control: dict[str, Any], gpu_hosts: dict[str, dict[str, Any]]) -> None:
    instances = settings_of(control["services"]["api"]).INSTANCES
    for host, config in gpu_hosts.items():
        for gpu in ("gpu0", "gpu1"):
            worker = config["services"][f"worker-{gpu}"]
            assert settings_of(worker).INSTANCES == instances  # one fleet.env everywhere
            assert worker["command"] == ["comfyq", "worker", f"{host}-{gpu}"]
            (port,) = config["services"][f"comfyui-{gpu}"]["ports"]
            host_ip, published, target = port.split(":")  # published on the private address only
            assert host_ip == HOSTS[host] and target == "8188/tcp"
            assert instances[f"{host}-{gpu}"].url == f"http://{host_ip}:{published}"
            assert f"comfyui-{gpu}" in worker["depends_on"]


def test_control_host_stores_listen_on_the_private_address_only(control: dict[str, Any]) -> None:
    private = example()["CONTROL_ADDR"]
    for name in ("redis", "postgres"):
        (port,) = control["services"][name]["ports"]
        assert port.startswith(f"{private}:"), (name, port)
    settings = settings_of(control["services"]["api"])
    assert f"@{private}:" in settings.REDIS_URL and f"@{private}:" in settings.SQLALCHEMY_DATABASE_URI


def test_fleet_env_example_sets_only_declared_settings() -> None:
    declared = {setting.name for setting in SETTINGS}
    names = set(example())
    assert {"COMFYQ_INSTANCES", "COMFYQ_REDIS_URL", "COMFYQ_DATABASE_URL", "COMFYQ_STORAGE"} <= names
    assert {n for n in names if n.startswith("COMFYQ_")} <= declared


def test_a_gpu_host_without_its_name_is_refused_with_how_to_fix_it() -> None:
    binary = shutil.which("docker-compose")
    assert binary
    done = subprocess.run([binary, "--env-file", str(EXAMPLE), "-f", str(DOCKER / "compose.gpu-host.yml"), "config"],
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "FLEET_ENV": EXAMPLE.name},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "set GPU_HOST" in done.stderr


def guide_commands() -> list[list[str]]:
    """Return the ``docker-compose`` command lines of docker/README.rst, continuation lines joined."""
    text = re.sub(r"\\\n\s*", "", (DOCKER / "README.rst").read_text())
    lines = [line.strip() for line in text.splitlines() if line.startswith("    ")]  # literal blocks
    return [shlex.split(line) for line in lines if line.startswith(("docker-compose ", "GPU_HOST="))]


def test_the_guide_renders_and_its_commands_name_real_files_and_services() -> None:
    warnings = io.StringIO()
    docutils.core.publish_string((DOCKER / "README.rst").read_text(), writer="null",
                                 settings_overrides={"warning_stream": warnings, "report_level": 2})
    assert warnings.getvalue() == ""
    commands = guide_commands()
    assert len(commands) >= 8
    for argv in commands:
        argv = argv[next(i for i, word in enumerate(argv) if word == "docker-compose"):]
        name = argv[argv.index("-f") + 1]
        assert (DOCKER.parent / name).is_file(), argv
        if name != "docker/compose.yml":
            assert argv[argv.index("--env-file") + 1] == "docker/fleet.env", argv
        services = set(yaml.safe_load((DOCKER.parent / name).read_text())["services"])
        verb = next(i for i, word in enumerate(argv) if word in ("up", "stop", "exec", "run", "down"))
        named, skip = [], False
        for word in argv[verb + 1:]:
            if skip or word.startswith("-"):
                skip = word == "-e"
                continue
            named.append(word)
        if argv[verb] in ("exec", "run"):
            named = named[:1]  # then the command it runs
        assert set(named) <= services, (argv, services)
