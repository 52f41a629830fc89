"""Trace where a job's time goes, in every process of a benchmark's stack (bench/overhead.py --profile).

Python imports this module at start-up when bench/tracing is on PYTHONPATH. It
does nothing unless ``BENCH_TRACE_DIR`` is set; then, as comfyq's modules are
imported, it wraps the functions on a job's path so each call appends one line
``{"job", "what", "t0", "t1", "pid"}`` (wall clock) to ``trace-<pid>.jsonl``
there. With ``BENCH_CPROFILE`` set too, the CPU time of each GPU worker run
(``JobRunner.run``), webhook attempt and API request is profiled, summed per
process in ``worker-``, ``webhooks-`` and ``api-<pid>.prof``.
"""
from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import json
import os
import sys
import threading
import time
from typing import Any, Callable

TRACE_DIR = os.environ.get("BENCH_TRACE_DIR")
_local = threading.local()
_files: dict[int, Any] = {}
_lock = threading.Lock()


def emit(job: str | None, what: str, t0: float, t1: float) -> None:
    """Append one traced span to this process's file."""
    pid = os.getpid()
    with _lock:
        out = _files.get(pid)
        if out is None:
            out = _files[pid] = open(os.path.join(TRACE_DIR, f"trace-{pid}.jsonl"), "a", buffering=1)
    out.write(json.dumps({"job": job, "what": what, "t0": t0, "t1": t1, "pid": pid}) + "\n")


def current_job() -> str | None:
    """Return the job this thread works for, if a traced call said so."""
    return getattr(_local, "job", None)


def span(what: str, job_of: Callable[..., str | None] | None = None) -> Callable[[Callable[..., Any]], Any]:
    """Wrap a function so each call is traced as ``what`` for the job ``job_of(*args)`` names."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def traced(*args: Any, **kwargs: Any) -> Any:
            job = None
            try:
                job = job_of(*args, **kwargs) if job_of else current_job()
            except Exception:  # noqa: BLE001 - tracing never breaks the call
                pass
            t0 = time.time()
            try:
                return fn(*args, **kwargs)
            finally:
                emit(job, what, t0, time.time())
        traced.__traced__ = True  # type: ignore[attr-defined]
        return traced
    return wrap


def _patch(obj: Any, name: str, what: str, job_of: Callable[..., str | None] | None = None) -> None:
    fn = getattr(obj, name)
    if not getattr(fn, "__traced__", False):
        setattr(obj, name, span(what, job_of)(fn))


def profiled(kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fn`` so its calls add to this process's CPU profile ``<kind>-<pid>.prof`` (BENCH_CPROFILE)."""
    profile_dir = os.environ.get("BENCH_CPROFILE")
    if not profile_dir:
        return fn
    import cProfile
    profiles: dict[int, Any] = {}
    dumped: dict[int, float] = {}

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        # CPU time, not wall time: on a busy host waits would drown what the code itself costs.
        pid = os.getpid()
        profiler = profiles.setdefault(pid, cProfile.Profile(time.process_time))
        profiler.enable()
        try:
            return fn(*args, **kwargs)
        finally:
            profiler.disable()
            if time.monotonic() - dumped.get(pid, 0.0) > 2.0:  # dumping costs more than a run: now and then
                dumped[pid] = time.monotonic()
                profiler.dump_stats(os.path.join(profile_dir, f"{kind}-{pid}.prof"))
    return run


def _runner(module: Any) -> None:
    cls = module.JobRunner
    original = profiled("worker", cls.run)

    @functools.wraps(original)
    def run(self: Any) -> Any:
        _local.job = self.job_id
        t0 = time.time()
        try:
            return original(self)
        finally:
            emit(self.job_id, "worker.run", t0, time.time())
            _local.job = None
    cls.run = run
    _patch(cls, "_admitted", "worker.admission_wait", lambda self: self.job_id)
    _patch(cls, "_finish", "worker.finish", lambda self, job, history: job.id)


def _attempts(module: Any) -> None:
    module.attempt = profiled("webhooks", module.attempt)
    _patch(module, "post", "webhook.post", lambda d, *a, **k: d.job_id)


def _flask(module: Any) -> None:
    module.Flask.full_dispatch_request = profiled("api", module.Flask.full_dispatch_request)


def _transition_job(job_id: str, to: Any, *args: Any, **kwargs: Any) -> str:
    return job_id


def _machine(module: Any) -> None:
    original_transition = module.transition

    @functools.wraps(original_transition)
    def transition(job_id: str, to: Any, expected: Any, **fields: Any) -> Any:
        t0 = time.time()
        try:
            return original_transition(job_id, to, expected, **fields)
        finally:
            emit(job_id, f"transition.{getattr(to, 'value', to)}", t0, time.time())
    module.transition = transition
    original_on_moved = module.on_moved

    def on_moved(hook: Callable[..., Any]) -> None:
        if any(getattr(h, "__wrapped__", None) is hook for h in module._hooks):
            return
        name = f"{hook.__module__.rsplit('.', 1)[-1]}.{hook.__name__}"

        @functools.wraps(hook)
        def traced_hook(moved: Any) -> Any:
            t0 = time.time()
            action = hook(moved)
            emit(moved.job_id, f"hook.{name}", t0, time.time())
            if action is None:
                return None

            def traced_action() -> None:
                a0 = time.time()
                try:
                    action()
                finally:
                    emit(moved.job_id, f"after.{name}.{moved.to.value}", a0, time.time())
            return traced_action
        original_on_moved(traced_hook)
    module.on_moved = on_moved


def _log(module: Any) -> None:
    if hasattr(module, "publish_piped"):  # a tree from before the pipeline has publish_many alone
        _log_piped(module)
    original = module.publish_many

    @functools.wraps(original)
    def publish_many(r: Any, items: Any) -> Any:
        items = list(items)
        t0 = time.time()
        try:
            return original(r, items)
        finally:
            t1 = time.time()
            for job_id, _, event in items:
                emit(job_id, f"event.{event.get('type')}", t0, t1)
    module.publish_many = publish_many


def _log_piped(module: Any) -> None:
    original_piped = module.publish_piped

    @functools.wraps(original_piped)
    def publish_piped(r: Any, items: Any, then: Any, failed: Any) -> Any:
        t0 = time.time()

        def traced_then(ids: Any) -> None:
            t1 = time.time()
            for job_id, _, event in items:
                emit(job_id, f"event.{event.get('type')}", t0, t1)
            then(ids)
        return original_piped(r, items, traced_then, failed)
    module.publish_piped = publish_piped


def _session(module: Any) -> None:
    _patch(module.Session, "commit", "db.commit")


def _signals(module: Any) -> None:
    def received(sender: Any = None, request: Any = None, **_: Any) -> None:
        args = getattr(request, "args", None) or ()
        now = time.time()
        emit(str(args[0]) if args else None, f"celery.received.{getattr(request, 'name', '?')}", now, now)

    def prerun(task_id: Any = None, task: Any = None, args: Any = None, **_: Any) -> None:
        now = time.time()
        emit(str(args[0]) if args else None, f"celery.prerun.{getattr(task, 'name', '?')}", now, now)
    module.task_received.connect(received, weak=False)
    module.task_prerun.connect(prerun, weak=False)


PATCHES: dict[str, Callable[[Any], None]] = {
    "comfyq.worker.runner": _runner,
    "comfyq.jobs.machine": _machine,
    "comfyq.events.log": _log,
    "comfyq.db.piped": lambda m: _patch(m._Gather, "send", "redis.gathered_send"),
    "comfyq.jobs.broker": lambda m: _patch(m, "enqueue", "broker.enqueue", lambda job, *a, **k: job.id),
    "comfyq.comfy.client": lambda m: (
        _patch(m.ComfyClient, "queue_prompt", "comfy.queue_prompt", lambda self, wf, pid, *a, **k: pid),
        _patch(m.ComfyClient, "follow", "comfy.follow", lambda self, pid, *a, **k: pid),
        _patch(m.ComfyClient, "history", "comfy.history", lambda self, pid, *a, **k: pid),
        _patch(m.ComfyClient, "download", "comfy.download")),
    "comfyq.worker.transfer": lambda m: (
        _patch(m, "download_outputs", "worker.download_outputs", lambda job_id, *a, **k: job_id),
        _patch(m, "stage_inputs", "worker.stage_inputs")),
    "comfyq.webhooks.attempts": _attempts,
    "flask.app": _flask,
    "comfyq.submission.accept": lambda m: _patch(m, "submit_job", "api.submit_job", lambda *a, **k: None),
    "sqlalchemy.orm.session": _session,
    "celery.signals": _signals,
}


class _Loader(importlib.abc.Loader):
    """Run a module's own loader, then its patch."""

    def __init__(self, inner: importlib.abc.Loader, patch: Callable[[Any], None]) -> None:
        self.inner, self.patch = inner, patch

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.inner.exec_module(module)
        try:
            self.patch(module)
        except Exception as exc:  # noqa: BLE001 - a tracer that broke start-up would measure nothing
            print(f"tracing: could not patch {module.__name__}: {exc!r}", file=sys.stderr)


class _Finder(importlib.abc.MetaPathFinder):
    """Find the modules to patch with the other finders, and hand back their specs with a patching loader."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in PATCHES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader, PATCHES[name])
        return spec


if TRACE_DIR:
    os.makedirs(TRACE_DIR, exist_ok=True)
    sys.meta_path.insert(0, _Finder())
