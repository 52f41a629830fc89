"""The worker processes' entries: one neutral Celery app, each process loading only its own signal handlers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

PROBE = """
import json, sys
from celery import signals
{body}
def receivers(signal):
    return sorted({{getattr(r(), "__module__", "?") for _, r in signal.receivers if r() is not None}})
print(json.dumps({{"modules": sorted(m for m in sys.modules if m.startswith(("comfyq.cli.", "comfyq.worker."))),
                  "failure": receivers(signals.task_failure), "received": receivers(signals.task_received),
                  "fork": receivers(signals.worker_process_init), **out}}))
"""


def probe(tmp_path: Path, body: str) -> dict[str, Any]:
    """Run ``body`` (which fills ``out``) in a fresh interpreter; return what it found, as JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFYQ_")}
    env.update(COMFYQ_DATA_DIR=str(tmp_path), COMFYQ_DATABASE_URL=f"sqlite:///{tmp_path}/t.db",
               COMFYQ_REDIS_URL="redis://127.0.0.1:1/0", COMFYQ_INSTANCES="gpu0=http://127.0.0.1:1")
    code = PROBE.format(body=textwrap.dedent(body))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_webhooks_worker_loads_none_of_the_gpu_workers_handlers(tmp_path: Path) -> None:
    found = probe(tmp_path, """
        from comfyq.cli import webhooks_worker
        out = {"argv": webhooks_worker.webhooks_argv("INFO", 3)}
    """)
    assert "comfyq.cli.gpu_worker" not in found["modules"] and "comfyq.cli.prefork" not in found["modules"]
    assert found["failure"] == [] and found["fork"] == []
    assert found["received"] == ["comfyq.cli.webhooks_worker"]
    assert found["argv"][3:9] == ["-Q", "webhooks", "-P", "threads", "-c", "3"]


def test_the_gpu_worker_and_the_control_worker_own_their_handlers(tmp_path: Path) -> None:
    found = probe(tmp_path, """
        from comfyq.cli import beat, gpu_worker
        out = {"gpu": gpu_worker.worker_argv("gpu0"), "control": beat.control_argv(),
               "both": beat.control_argv("INFO", 8)}
    """)
    assert found["failure"] == ["comfyq.cli.gpu_worker"] and found["fork"] == ["comfyq.cli.prefork"]
    assert found["received"] == ["comfyq.cli.gpu_worker"]
    assert found["gpu"][3:7] == ["-Q", "comfy,comfy.gpu0", "-P", "prefork"]
    assert found["control"][3:9] == ["-Q", "control", "-P", "threads", "-c", "1"]  # no child: beat is a thread
    assert found["both"][3:9] == ["-Q", "control,webhooks", "-P", "threads", "-c", "9"]  # comfyq up's beat --webhooks


def test_the_control_process_forks_nothing_and_loads_no_http_code(tmp_path: Path) -> None:
    probe(tmp_path, """
        from comfyq.app import worker_apps
        worker_apps()  # migrate the fresh database first, as the GPU worker's test does
        out = {}
    """)
    found = probe(tmp_path, """
        from comfyq.cli import beat
        beat.schedule_file()  # builds the apps the control process runs
        out = {"all": sorted(sys.modules)}
    """)
    assert found["fork"] == [] and "comfyq.cli.prefork" not in found["modules"]
    assert "flask_sqlalchemy" in found["all"] and "comfyq.cli.webhooks_worker" not in found["modules"]  # only with --webhooks
    assert not {"comfyq.api", "flask_smorest", "apispec", "mcp", "boto3", "alembic"} & set(found["all"])


def test_a_gpu_worker_loads_no_http_code_nor_s3_nor_migrations(tmp_path: Path) -> None:
    made = probe(tmp_path, """
        from comfyq.app import worker_apps
        worker_apps()
        out = {"alembic": "alembic" in sys.modules}
    """)
    assert made["alembic"]  # a fresh database is migrated; once up to date, alembic stays unloaded
    found = probe(tmp_path, """
        from comfyq.cli import gpu_worker
        from comfyq.app import worker_apps
        app = worker_apps()[0]
        out = {"all": sorted(sys.modules), "rules": len(list(app.url_map.iter_rules()))}
    """)
    assert not {"comfyq.api", "comfyq.editor", "comfyq.dashboard", "flask_smorest", "apispec", "mcp", "boto3",
                "alembic", "flask_migrate"} & set(found["all"])
    assert found["rules"] <= 1  # Flask's static route alone


def test_celery_finds_one_app_with_every_task_routed(tmp_path: Path) -> None:
    found = probe(tmp_path, """
        from celery.app.utils import find_app
        app = find_app("comfyq.app")
        app.loader.import_default_modules()
        names = sorted(n for n in app.tasks if n.startswith("comfyq."))
        out = {"names": names, "routes": [app.conf.task_routes[n]["queue"] for n in names],
               "include": list(app.conf.include)}
    """)
    assert found["names"] == ["comfyq.deliver_webhook", "comfyq.expire_outputs", "comfyq.reconcile",
                              "comfyq.resend_webhooks", "comfyq.run_job"]
    assert found["routes"] == ["webhooks", "control", "control", "control", "comfy"]
    assert set(found["include"]) == {"comfyq.worker.tasks", "comfyq.control.tasks", "comfyq.webhooks.tasks"}
    assert "comfyq.cli.gpu_worker" not in found["modules"]  # inspect and Flower load no worker's handlers
