"""Every metric comfyq exposes, declared once: name, kind, help and label names."""
from __future__ import annotations

from typing import NamedTuple

# Seconds: from a fraction of a second (a cached prompt) to hours (a long upscale, a deep queue).
TIME_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)


class Metric(NamedTuple):
    """One metric family."""

    name: str  # without the ``_total`` a counter's sample adds
    kind: str  # counter, histogram or gauge
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


# Counted in Redis by the process that saw it happen.
JOBS_ENDED = Metric("comfyq_jobs_ended", "counter", "Jobs that reached a final state.", ("state", "template"))
QUEUE_WAIT = Metric("comfyq_job_queue_wait_seconds", "histogram",
                    "Seconds from a job's submission to the start of its run.", ("template", "instance"), TIME_BUCKETS)
RUN_TIME = Metric("comfyq_job_run_seconds", "histogram",
                  "Seconds a job ran on its instance, to its end (any final state).", ("template", "instance"),
                  TIME_BUCKETS)
WEBHOOK_ATTEMPTS = Metric("comfyq_webhook_attempts", "counter",
                          "Webhook delivery attempts by outcome: delivered (2xx), failed, refused.", ("outcome",))
CREDITS_DEBITED = Metric("comfyq_credits_debited", "counter", "Credits debited for submitted jobs.")
CREDITS_REFUNDED = Metric("comfyq_credits_refunded", "counter",
                          "Credits refunded to jobs that failed, timed out or were cancelled before running.")
REPAIRS = Metric("comfyq_reconciler_repairs", "counter",
                 "Repairs made by the reconciler: admitted, requeued, timed_out, positions_rebuilt.", ("repair",))
STORED = (JOBS_ENDED, QUEUE_WAIT, RUN_TIME, WEBHOOK_ATTEMPTS, CREDITS_DEBITED, CREDITS_REFUNDED, REPAIRS)

# Read when scraped.
QUEUE_DEPTH = Metric("comfyq_queue_depth", "gauge", "Messages waiting in a broker queue.", ("queue",))
JOBS = Metric("comfyq_jobs", "gauge", "Jobs now pending, queued or running.", ("state",))
INSTANCE_UP = Metric("comfyq_instance_up", "gauge", "1 if the instance's worker reports it healthy.", ("instance",))
INSTANCE_INTAKE = Metric("comfyq_instance_intake_open", "gauge",
                         "1 if the instance's worker takes jobs from the shared queues.", ("instance",))
INSTANCE_VRAM = Metric("comfyq_instance_vram_free_bytes", "gauge", "Free VRAM the instance last reported.",
                       ("instance",))
USER_RUNNING = Metric("comfyq_user_running_jobs", "gauge",
                      "Running jobs of the users running the most (COMFYQ_METRICS_TOP_USERS of them).", ("user",))
SOURCE_UP = Metric("comfyq_metrics_source_up", "gauge",
                   "1 if a scrape could read the source (redis, database, broker).", ("source",))
LIVE = (QUEUE_DEPTH, JOBS, INSTANCE_UP, INSTANCE_INTAKE, INSTANCE_VRAM, USER_RUNNING, SOURCE_UP)
