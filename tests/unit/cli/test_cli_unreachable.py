"""The CLI with no API to talk to, or a workflow path that is not there: one line that says what to do."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from comfyq.sim.process import free_port


def comfyq(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the comfyq command as a user would, with no COMFYQ_* settings of the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFYQ_")}
    return subprocess.run([sys.executable, "-m", "comfyq", *args], cwd=cwd, env={**env, "COMFYQ_API_KEY": "cq_x"},
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_submit_and_wait_with_no_api_says_where_it_looked_in_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = comfyq("submit", "txt2img", "-p", "prompt=x", "--wait", "--api-url", url, cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"Error: the comfyq API at {url} is unreachable (ConnectionError); start it (python3 -m comfyq up) "
        "or point the client at it with --api-url or COMFYQ_API_URL"]


def test_every_api_command_fails_the_same_way(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "cat.png").write_bytes(b"not read before the API answers")
    for args in (("jobs", "list"), ("jobs", "show", "x"), ("jobs", "cancel", "x"), ("upload", "cat.png")):
        done = comfyq(*args, "--api-url", url, cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr, (args, done.stderr)
        assert len(done.stderr.splitlines()) == 1 and url in done.stderr and "COMFYQ_API_URL" in done.stderr


def test_a_workflow_path_that_is_not_there_is_no_template_name(tmp_path: Path) -> None:
    done = comfyq("submit", "templates_wf/txt2img/workflow.json", cwd=tmp_path)
    assert done.returncode == 2
    assert f"no such file: templates_wf/txt2img/workflow.json (looked in {tmp_path})" in done.stderr
