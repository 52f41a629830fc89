"""Run one job on this worker's ComfyUI instance, from claim to stored outputs."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import redis
from celery.exceptions import SoftTimeLimitExceeded
from flask import current_app

from . import events, instances
from .comfy import (ComfyClient, ComfyConnectFailed, ComfyError, ComfyProtocolError, ComfyTimeout,
                    ComfyUnreachable, ExecutionFailed, ExecutionInterrupted, PromptLost, PromptRejected)
from .comfy.payloads import outcome
from .config import Instance
from .errors import ComfyqError
from .extensions import db
from .jobs import JobStatus, is_terminal, set_progress, transition
from .models import Job, Output
from .progress import ProgressTracker
from .storage import LocalStore, content_type, safe_name, unique_name

logger = logging.getLogger(__name__)
SAVE_EVERY = 0.5  # seconds between progress writes to the DB and the Celery backend


class InstanceUnavailable(Exception):
    """The job cannot run here now; retry it on ``queue``."""

    def __init__(self, message: str, queue: str) -> None:
        super().__init__(message, queue)
        self.message, self.queue = message, queue

    def __str__(self) -> str:
        return self.message


class JobRunner:
    """Claim a job, run its prompt on one instance, and record how it ended."""

    def __init__(self, job_id: str, instance: Instance, client: ComfyClient, store: LocalStore,
                 r: redis.Redis, report: Callable[[dict[str, Any]], None] | None = None,
                 inputs: LocalStore | None = None, time_limits: dict[str, float | None] | None = None) -> None:
        self.job_id = job_id
        self.instance = instance
        self.client = client
        self.store = store
        self.inputs = inputs or LocalStore(current_app.config["INPUT_DIR"])
        self.time_limits = time_limits or {}
        self.redis = r
        self.report = report
        self.cancelling = False
        self.submitted = False  # from here on, the instance may hold the prompt
        self._saved_at = time.monotonic()

    def run(self) -> str:
        """Run the job unless it is terminal or taken; return the status it ended in."""
        job = db.session.get(Job, self.job_id)
        if job is None:
            logger.warning("job %s does not exist; dropping its task", self.job_id)
            return "missing"
        if is_terminal(job.status):
            return job.status
        elsewhere = job.status == JobStatus.RUNNING and job.instance != self.instance.name
        if elsewhere and job.instance in current_app.config["INSTANCES"]:
            # Its prompt may still run there: only that instance's worker may reattach.
            raise InstanceUnavailable(f"job {job.id} runs on {job.instance}",
                                      current_app.config["INSTANCES"][job.instance].queue)
        resume = job.status == JobStatus.RUNNING and job.instance == self.instance.name
        if not resume and not transition(
                job.id, JobStatus.RUNNING, [JobStatus(job.status)], instance=self.instance.name,
                prompt_id=job.id, attempts=Job.attempts + 1, progress=None):
            return "taken"
        self.tracker = ProgressTracker(job.workflow, self._labels(job))
        self.tracker.state["time_limits"] = self.time_limits  # as the worker enforces them
        instances.set_running(self.redis, self.instance.name, job.id)
        try:
            return self._finish(job, self._execute(job, resume))
        except PromptRejected as exc:
            return self._end(JobStatus.FAILED, {
                "type": "prompt_rejected", "message": f"ComfyUI rejected the workflow: {exc.message}",
                "error": exc.error, "node_errors": exc.node_errors})
        except ExecutionFailed as exc:
            return self._end(JobStatus.FAILED, {
                "type": "execution_failed", "node_id": exc.node_id, "node_type": exc.node_type,
                "exception_type": exc.exception_type,
                "message": f"node {exc.node_id} ({exc.node_type}) failed: {exc.message}"})
        except (ExecutionInterrupted, PromptLost) as exc:
            if self.cancelling:
                return self._end(JobStatus.CANCELLED, {"type": "cancelled", "message": "cancelled by request"})
            return self._end(JobStatus.FAILED, {"type": "interrupted", "message": f"the prompt ended early: {exc}"})
        except ComfyProtocolError as exc:
            return self._end(JobStatus.FAILED, {"type": "comfyui_error",
                                                "message": f"ComfyUI answered unexpectedly: {exc}"})
        except SoftTimeLimitExceeded:
            self._stop_prompt()
            self.store.remove_job(job.id)  # outputs of a download the limit cut short
            return self._end(JobStatus.TIMED_OUT, {"type": "timed_out", "message": "the job ran past its time limit"})
        except (ComfyUnreachable, ComfyTimeout) as exc:
            message = f"instance {self.instance.name}: {exc}"
            if self.submitted:  # it may run there still: come back here and reattach
                raise InstanceUnavailable(message, self.instance.queue) from exc
            transition(job.id, JobStatus.QUEUED, [JobStatus.RUNNING],
                       error={"type": "instance_unavailable", "message": message})
            raise InstanceUnavailable(message, job.queue) from exc
        finally:
            instances.set_running(self.redis, self.instance.name, None)

    def _labels(self, job: Job) -> dict[str, str]:
        """Return the friendly node names of the job's template (none for raw workflows)."""
        if not job.template:
            return {}
        try:
            return dict(current_app.extensions["templates"].get(f"{job.template}@{job.template_version}").node_labels)
        except ComfyqError:  # this worker's templates lack that version: class types will do
            return {}

    def _execute(self, job: Job, resume: bool) -> dict[str, Any]:
        """Submit (or reattach to) the prompt and follow it to its end."""
        self.client.connect()
        if resume:
            self.submitted = True
            where = self.client.find_prompt(job.id)
            if where == "done":
                return outcome(job.id, self.client.history(job.id) or {}, self.client.base_url)
            if where == "unknown":
                self._submit(job)
        else:
            self._submit(job)
        return self.client.follow(job.id, self._on_event, poll=self._poll)

    def _stage_inputs(self, job: Job) -> None:
        """Upload the job's input images the instance does not have yet (names are content hashes)."""
        for name in job.inputs or ():
            if not self.client.has_file(name, type="input"):
                answer = self.client.upload_image(self.inputs.path(name).read_bytes(), name, overwrite=True)
                if answer["name"] != name:
                    raise ComfyProtocolError(f"input {name} was stored as {answer['name']}", self.client.base_url)

    def _submit(self, job: Job) -> None:
        """POST the prompt; after an uncertain answer, look it up instead of posting twice."""
        self._stage_inputs(job)
        self.submitted = True
        try:
            self.client.queue_prompt(job.workflow, job.id)
        except ComfyConnectFailed:
            self.submitted = False  # the request never left, so the instance cannot hold the prompt
            raise
        except (ComfyUnreachable, ComfyTimeout):
            if self.client.find_prompt(job.id) == "unknown":
                raise
        events.publish(self.redis, job.id, {"type": "running", "instance": self.instance.name,
                                            "time_limits": self.time_limits})

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        """Publish one execution message and, throttled, record the progress."""
        event = self.tracker.apply(kind, data)
        if event is None:
            return
        events.publish(self.redis, self.job_id, event)
        now = time.monotonic()
        # Throttled: a trivial prompt ends before the first write; the final state is saved at the end.
        if now - self._saved_at >= SAVE_EVERY:
            self._saved_at = now
            set_progress(self.job_id, dict(self.tracker.state))
            if self.report is not None:
                self.report(dict(self.tracker.state))

    def _poll(self) -> None:
        """Stop the prompt once a cancel is requested."""
        if not self.cancelling and events.cancel_requested(self.redis, self.job_id):
            self.cancelling = True
            self._stop_prompt()

    def _stop_prompt(self) -> None:
        """Drop this job's prompt if pending, and interrupt it if it is the one running."""
        try:
            # In this order a prompt that starts between the two calls is still caught.
            self.client.delete_from_queue([self.job_id])
            self.client.interrupt(self.job_id)
        except ComfyError as exc:
            logger.warning("could not stop prompt %s on %s: %s", self.job_id, self.instance.name, exc)

    def _end(self, status: JobStatus, error: dict[str, Any]) -> str:
        """Record a non-success end (a no-op if the job was cancelled meanwhile)."""
        db.session.rollback()  # never commit output rows of a run that did not succeed
        if not transition(self.job_id, status, [JobStatus.RUNNING], error=error,
                          progress=dict(self.tracker.state)):
            return "superseded"
        events.publish(self.redis, self.job_id, {"type": "finished", "status": status.value, "error": error})
        return status.value

    def _finish(self, job: Job, history: dict[str, Any]) -> str:
        """Download and store every output, then mark the job succeeded in the same commit."""
        outputs: list[Output] = []
        taken: set[str] = set()
        for node_id, item in _history_files(history):
            name = unique_name(safe_name(item["filename"]), taken)
            with self.store.writer(job.id, name) as fh:
                size, sha256 = self.client.download(
                    item["filename"], item.get("subfolder", ""), item.get("type", "output"), dest=fh)
            outputs.append(Output(job_id=job.id, name=name, node_id=node_id, kind=item.get("type", "output"),
                                  content_type=content_type(name), size=size, sha256=sha256,
                                  path=self.store.relative(job.id, name)))
        db.session.add_all(outputs)
        if not transition(job.id, JobStatus.SUCCEEDED, [JobStatus.RUNNING], error=None,
                          progress=dict(self.tracker.state)):
            self.store.remove_job(job.id)
            return "superseded"
        events.publish(self.redis, job.id, {"type": "finished", "status": "succeeded", "outputs": [
            {"name": o.name, "size": o.size, "sha256": o.sha256, "content_type": o.content_type}
            for o in outputs]})
        return JobStatus.SUCCEEDED.value


def _history_files(history: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """List (node id, file ref) for every file a prompt's history names."""
    files = []
    for node_id, node_out in (history.get("outputs") or {}).items():
        for items in node_out.values() if isinstance(node_out, dict) else ():
            if isinstance(items, list):
                files.extend((str(node_id), i) for i in items if isinstance(i, dict) and i.get("filename"))
    return files

