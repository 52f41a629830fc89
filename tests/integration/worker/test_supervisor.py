"""ComfySupervisor keeps a simulator up, restarts, recycles and frees it, and cleans up after itself."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil
import pytest
import requests

from comfyq.sim.journal import counts
from comfyq.sim.process import free_port
from comfyq.worker.supervisor import ComfySupervisor, SupervisorError
from tests.integration.conftest import wait_until

Factory = Callable[..., ComfySupervisor]


class Calls:
    """Record on_down reasons and on_up calls."""

    def __init__(self) -> None:
        self.down: list[str] = []
        self.up = 0

    def on_down(self, reason: str) -> None:
        """Record a down."""
        self.down.append(reason)

    def on_up(self) -> None:
        """Record an up."""
        self.up += 1



def answers(url: str) -> bool:
    """Tell whether a server at url answers /system_stats with 200."""
    try:
        return requests.get(f"{url}/system_stats", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def processes_naming(marker: str) -> list[psutil.Process]:
    """Return the live processes whose command line mentions marker."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(marker in part for part in cmdline):
            found.append(proc)
    return found


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Factory]:
    """Build supervisors of a simulator in tmp_path; stop them all afterwards."""
    made: list[ComfySupervisor] = []

    def make(*sim_args: str, **kwargs: Any) -> ComfySupervisor:
        port = free_port()
        command = (f"{sys.executable} -m comfyq.sim --port {port} --output-dir {tmp_path} "
                   f"--journal {tmp_path}/journal.log {' '.join(sim_args)}")
        kwargs.setdefault("check_interval", 0.1)
        kwargs.setdefault("log_path", str(tmp_path / "comfy.log"))
        url = kwargs.pop("url", f"http://127.0.0.1:{port}")
        sup = ComfySupervisor(kwargs.pop("command", command), url, **kwargs)
        made.append(sup)
        return sup

    yield make
    for sup in made:
        sup.stop(timeout=2)
    assert processes_naming(str(tmp_path)) == []


def test_start_waits_until_ready(supervise: Factory) -> None:
    sup = supervise("--start-delay", "1")
    started = time.monotonic()
    sup.start()
    assert time.monotonic() - started >= 1
    assert answers(sup.url) and sup.pid is not None and sup.restarts == 0


def test_killed_process_comes_back(supervise: Factory) -> None:
    calls = Calls()
    sup = supervise(on_down=calls.on_down, on_up=calls.on_up)
    sup.start()
    sup.watch()
    old = sup.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: sup.pid not in (None, old) and answers(sup.url) and calls.up == 1, timeout=10)
    assert calls.down == [f"exited with {-signal.SIGKILL}"] and sup.restarts == 1


def test_restart_gives_a_new_process(supervise: Factory) -> None:
    calls = Calls()
    sup = supervise(on_down=calls.on_down, on_up=calls.on_up)
    sup.start()
    old = sup.pid
    sup.restart("stuck")
    assert sup.pid not in (None, old) and answers(sup.url)
    assert not psutil.pid_exists(old)
    assert calls.down == ["stuck"] and calls.up == 1 and sup.restarts == 1


def test_recycles_after_max_jobs_once_idle(supervise: Factory) -> None:
    idle = threading.Event()
    calls = Calls()
    sup = supervise(max_jobs=2, is_idle=idle.is_set, on_down=calls.on_down, on_up=calls.on_up)
    sup.start()
    sup.watch()
    old = sup.pid
    sup.job_done()
    sup.job_done()
    time.sleep(0.5)
    assert sup.pid == old, "recycled while busy"
    idle.set()
    wait_until(lambda: calls.up == 1)
    assert calls.down == ["recycled after 2 jobs"] and sup.pid not in (None, old)
    recycled = sup.pid
    time.sleep(0.5)
    assert sup.pid == recycled and sup.restarts == 1, "the job count was not reset"


def test_recycles_over_max_rss(supervise: Factory) -> None:
    calls = Calls()
    sup = supervise(max_rss_bytes=1, on_down=calls.on_down, on_up=calls.on_up)
    sup.start()
    assert sup.rss_bytes() > 1
    old = sup.pid
    sup.watch()
    wait_until(lambda: calls.up >= 1)
    assert calls.down[0].startswith("recycled: RSS ") and calls.down[0].endswith(" MB over 0 MB")
    assert old is not None and not psutil.pid_exists(old)


def test_frees_once_per_idle_period(supervise: Factory, tmp_path: Path) -> None:
    idle = threading.Event()
    idle.set()
    sup = supervise(free_after_idle=0.5, is_idle=idle.is_set)
    sup.start()
    sup.watch()
    journal = str(tmp_path / "journal.log")
    time.sleep(0.3)
    assert counts(journal, "free")["-"] == 0, "freed before free_after_idle"
    time.sleep(1.7)
    assert counts(journal, "free")["-"] == 1
    idle.clear()
    time.sleep(0.3)
    idle.set()
    wait_until(lambda: counts(journal, "free")["-"] == 2, timeout=3)
    time.sleep(0.7)
    assert counts(journal, "free")["-"] == 2


def test_failing_callbacks_are_logged_not_fatal(supervise: Factory, caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_args: object) -> bool:
        raise ValueError("callback broke")

    ups = Calls()
    sup = supervise(free_after_idle=0.1, is_idle=broken, on_down=broken, on_up=ups.on_up)
    sup.start()
    sup.watch()
    time.sleep(0.3)
    old = sup.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: ups.up == 1 and sup.pid not in (None, old))
    assert caplog.text.count("callback broke") >= 3


def test_free_failure_is_logged_not_fatal(supervise: Factory, caplog: pytest.LogCaptureFixture) -> None:
    sup = supervise(free_after_idle=0.1)
    sup.start()
    sup.url = f"http://127.0.0.1:{free_port()}"  # /free now meets a closed port
    sup.watch()
    wait_until(lambda: "POST /free failed" in caplog.text, timeout=5)
    time.sleep(0.3)
    assert sup._monitor is not None and sup._monitor.is_alive()  # noqa: SLF001


def test_start_fails_when_the_command_exits(supervise: Factory) -> None:
    code = "import sys; sys.stderr.write('no GPU here'); raise SystemExit(3)"
    sup = supervise(command=f"{sys.executable} -c \"{code}\"")
    with pytest.raises(SupervisorError, match=r"(?s)exited with 3 before it was ready.*no GPU here"):
        sup.start()
    assert sup.pid is None


def test_start_fails_when_not_ready_in_time(supervise: Factory, tmp_path: Path) -> None:
    sup = supervise("--start-delay", "30", ready_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(SupervisorError, match="not ready within 0.5s"):
        sup.start()
    assert time.monotonic() - started < 5
    assert sup.pid is None and processes_naming(str(tmp_path)) == []


def test_stop_leaves_no_process_behind(supervise: Factory, tmp_path: Path) -> None:
    # A child that ignores SIGTERM, beside the simulator in the same process group.
    stubborn = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    sim = f"{sys.executable} -m comfyq.sim --port {{port}} --output-dir {tmp_path}"
    port = free_port()
    shell = f"{sys.executable} -c '{stubborn}' {tmp_path} & exec {sim.format(port=port)}"
    sup = supervise(command=f"sh -c \"{shell}\"", url=f"http://127.0.0.1:{port}")
    sup.start()
    sup.watch()
    pid = sup.pid
    assert pid is not None
    wait_until(lambda: len(processes_naming(str(tmp_path))) == 2)
    assert sup.rss_bytes() > psutil.Process(pid).memory_info().rss
    stopped = time.monotonic()
    sup.stop(timeout=0.5)
    assert time.monotonic() - stopped < 5
    assert not psutil.pid_exists(pid) and processes_naming(str(tmp_path)) == []
    sup.stop()
    assert sup.pid is None


def test_refuses_to_start_over_a_server_already_answering(tmp_path: Path) -> None:
    from comfyq.sim.process import SimProcess

    with SimProcess(output_dir=str(tmp_path)) as orphan:
        supervisor = ComfySupervisor(f"{sys.executable} -m comfyq.sim --port {orphan.port}", orphan.url,
                                     ready_timeout=10)
        with pytest.raises(SupervisorError, match="already answers"):
            supervisor.start()
        assert supervisor.pid is None and orphan.alive
