"""Stored hashes read back as families, and what a job's move measures."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from comfyq.jobs.machine import JobStatus, Moved
from comfyq.metrics.catalogue import CREDITS_REFUNDED, JOBS_ENDED, QUEUE_WAIT, RUN_TIME
from comfyq.metrics.moves import measured
from comfyq.metrics.stored import counter_family, histogram_family


def exposed(*families: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Render families as a scrape would and parse them back."""
    class Fixed:
        def collect(self) -> list[object]:
            return list(families)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def field(*parts: str) -> bytes:
    return json.dumps(list(parts)).encode()


def test_histogram_buckets_become_cumulative_and_count_is_the_last() -> None:
    fields = {field("t", "gpu0", "0.25"): b"2", field("t", "gpu0", "5.0"): b"1", field("t", "gpu0", "+Inf"): b"1",
              field("t", "gpu0", "sum"): b"9000.5"}
    samples = exposed(histogram_family(RUN_TIME, fields))
    labels = (("instance", "gpu0"), ("template", "t"))
    at = {le: samples[("comfyq_job_run_seconds_bucket", tuple(sorted(labels + (("le", le),))))]
          for le in ("0.25", "0.5", "5.0", "7200.0", "+Inf")}
    assert at == {"0.25": 2, "0.5": 2, "5.0": 3, "7200.0": 3, "+Inf": 4}
    assert samples[("comfyq_job_run_seconds_count", labels)] == 4
    assert samples[("comfyq_job_run_seconds_sum", labels)] == 9000.5


def test_counters_with_and_without_labels() -> None:
    samples = exposed(counter_family(JOBS_ENDED, {field("failed", "raw"): b"3"}), counter_family(CREDITS_REFUNDED, {}))
    assert samples[("comfyq_jobs_ended_total", (("state", "failed"), ("template", "raw")))] == 3
    assert samples[("comfyq_credits_refunded_total", ())] == 0  # present from the start


def moved(came_from: JobStatus, to: JobStatus, template: str | None = "txt2img", instance: str | None = "gpu1",
          wait: float = 4, ran: float | None = 30) -> Moved:
    created = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
    started = created + timedelta(seconds=wait)
    finished = None if ran is None else started + timedelta(seconds=ran)
    return Moved("j1", "u1", "comfy", came_from, to, instance, 1, None, None, None, template, started, finished,
                 created)


def parts(items: list) -> list[tuple[str, list[str], float]]:
    return [(i.key.rsplit(":", 1)[1], json.loads(i.field), i.amount) for i in items]


def test_a_start_observes_the_queue_wait() -> None:
    assert parts(measured(moved(JobStatus.QUEUED, JobStatus.RUNNING, ran=None))) == [
        (QUEUE_WAIT.name, ["txt2img", "gpu1", "5.0"], 1), (QUEUE_WAIT.name, ["txt2img", "gpu1", "sum"], 4.0)]
    # A take-over by another worker is no new wait.
    assert measured(moved(JobStatus.RUNNING, JobStatus.RUNNING, ran=None)) == []


def test_an_end_counts_per_template_and_observes_the_run() -> None:
    assert parts(measured(moved(JobStatus.RUNNING, JobStatus.TIMED_OUT, template=None))) == [
        (JOBS_ENDED.name, ["timed_out", "raw"], 1),
        (RUN_TIME.name, ["raw", "gpu1", "30.0"], 1), (RUN_TIME.name, ["raw", "gpu1", "sum"], 30.0)]
    # A job cancelled before it ran has an end and no run.
    assert parts(measured(moved(JobStatus.PENDING, JobStatus.CANCELLED, instance=None, ran=None))) == [
        (JOBS_ENDED.name, ["cancelled", "txt2img"], 1)]
    assert measured(moved(JobStatus.RUNNING, JobStatus.QUEUED, ran=None)) == []
