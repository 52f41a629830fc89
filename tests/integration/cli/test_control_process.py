"""``comfyq beat``: one process, beat on a thread, the reconciler's passes run; with --webhooks it holds a lease."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import redis

from tests.integration.conftest import stop_group


def test_the_control_process_runs_its_schedule_without_a_child(stack_env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "beat.log"
    env = {**os.environ, **stack_env, "COMFYQ_RECONCILE_INTERVAL": "1", "COMFYQ_DATA_DIR": str(tmp_path)}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "comfyq", "beat", "--webhooks", "--loglevel", "INFO"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    r = redis.Redis.from_url(stack_env["COMFYQ_REDIS_URL"])
    try:
        deadline = time.monotonic() + 90
        passes = 0
        while passes < 2:  # beat sent two passes and the worker ran them
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            passes = sum("comfyq.reconcile[" in line and "succeeded" in line for line in log.read_text().splitlines())
            time.sleep(0.2)
        said = log.read_text()
        assert "Sending due task reconcile" in said
        assert psutil.Process(proc.pid).children(recursive=True) == []  # no beat process, no pool child
        assert r.keys("comfyq:worker:control@*")  # the lease that holds webhook retries runs
        assert (tmp_path / "celerybeat-schedule").exists() or list(tmp_path.glob("celerybeat-schedule*"))
    finally:
        stop_group(proc)
