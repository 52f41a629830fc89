"""docker/compose.yml and the Procfile, checked as the tools that run them read them."""
from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from comfyq.cli.main import main
from comfyq.config.settings import parse_instances

ROOT = Path(__file__).resolve().parents[2]


def targets(service: dict) -> set[str]:
    """Return the container paths of a service's volumes (short or long syntax)."""
    return {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in service.get("volumes", [])}


@pytest.fixture(scope="module")
def compose() -> dict:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: scripts/test.sh installs Debian's package"
    done = subprocess.run([binary, "-f", str(ROOT / "docker/compose.yml"), "config"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_every_service_has_an_image_or_build_and_a_command(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "postgres", "api", "worker-gpu0", "worker-gpu1", "beat", "webhooks", "flower",
                             "comfyui-gpu0", "comfyui-gpu1"}
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
        if name != "postgres":
            assert service.get("command"), name
    for name in ("api", "worker-gpu0", "worker-gpu1", "beat", "webhooks", "flower"):
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
        assert (ROOT / services[name]["build"]["dockerfile"]).is_file()
    assert (ROOT / "docker" / services["comfyui-gpu0"]["build"]["dockerfile"]).is_file()


def test_workers_are_bound_to_their_instances(compose: dict) -> None:
    services = compose["services"]
    for gpu in ("gpu0", "gpu1"):
        worker = services[f"worker-{gpu}"]
        assert worker["command"] == ["comfyq", "worker", gpu]
        instances = parse_instances(worker["environment"]["COMFYQ_INSTANCES"])
        assert instances[gpu].url == f"http://comfyui-{gpu}:8188"
        assert f"comfyui-{gpu}" in worker["depends_on"]
        assert {"/var/lib/comfyq/outputs", "/var/lib/comfyq/inputs"} <= targets(worker)


def test_comfyq_services_share_broker_database_and_outputs(compose: dict) -> None:
    services = compose["services"]
    envs = [services[n]["environment"] for n in ("api", "worker-gpu0", "worker-gpu1", "beat", "webhooks", "flower")]
    assert all(e["COMFYQ_REDIS_URL"] == "redis://redis:6379/0" for e in envs)
    assert all(e["COMFYQ_DATABASE_URL"].startswith("postgresql+psycopg://") for e in envs)
    assert services["api"]["ports"][0]["target"] == 8000
    assert {"/var/lib/comfyq/outputs", "/var/lib/comfyq/inputs"} <= targets(services["api"])
    assert services["flower"]["command"][:2] == ["comfyq", "flower"]
    assert services["beat"]["command"] == ["comfyq", "beat"]
    assert services["webhooks"]["command"] == ["comfyq", "webhooks"]
    assert "ports" not in services["webhooks"] and not targets(services["webhooks"])  # no GPU, no files, no inbound


def test_each_comfyui_reserves_its_own_gpu_and_is_not_published(compose: dict) -> None:
    for index, gpu in enumerate(("gpu0", "gpu1")):
        service = compose["services"][f"comfyui-{gpu}"]
        device = service["deploy"]["resources"]["reservations"]["devices"][0]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert device["device_ids"] == [str(index)]
        assert "ports" not in service  # ComfyUI is never exposed to clients
        assert {"/opt/ComfyUI/models", "/opt/ComfyUI/input", "/opt/ComfyUI/output"} <= targets(service)


def test_procfile_lines_run_real_commands() -> None:
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert set(lines) == {"api", "worker_gpu0", "worker_gpu1", "beat", "webhooks", "flower"}
    assert lines["beat"].split() == ["comfyq", "beat"]
    assert lines["webhooks"].split() == ["comfyq", "webhooks"]
    runner = CliRunner()
    for name, command in lines.items():
        argv = shlex.split(command.replace("${PORT:-8000}", "8000").replace("${FLOWER_PORT:-5555}", "5555"))
        assert argv[0] == "comfyq", name
        result = runner.invoke(main, [argv[1], "--help"])
        assert result.exit_code == 0, (name, result.output)
    assert lines["worker_gpu1"].split() == ["comfyq", "worker", "gpu1"]
    env = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
               if line and not line.startswith("#"))
    instances = parse_instances(env["COMFYQ_INSTANCES"])
    for name in ("worker_gpu0", "worker_gpu1"):
        assert lines[name].split()[-1] in instances  # each worker line names a configured instance


def test_the_procfile_and_compose_run_the_same_comfyq_processes(compose: dict) -> None:
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    comfyq_services = {name for name, s in compose["services"].items() if s.get("command", [""])[0] == "comfyq"}
    assert {name.replace("_", "-") for name in lines} == comfyq_services
    for name, command in lines.items():
        assert compose["services"][name.replace("_", "-")]["command"][:3] == shlex.split(command)[:3], name
