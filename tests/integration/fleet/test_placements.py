"""A queued job's prompt is placed on one instance at most."""
from __future__ import annotations

import uuid

import redis

from comfyq.fleet import placements


def test_a_job_is_placed_on_one_instance_at_most_until_unplaced(rds: redis.Redis) -> None:
    job = f"job-{uuid.uuid4().hex}"
    assert placements.placed_on(rds, job) is None
    assert placements.place(rds, "gpuA", job)
    assert not placements.place(rds, "gpuB", job)  # taken: the second instance must not post it too
    assert placements.placed_on(rds, job) == "gpuA"
    assert job in placements.placed_jobs(rds, "gpuA") and job not in placements.placed_jobs(rds, "gpuB")
    assert 0 < rds.ttl(placements.JOB_KEY.format(job)) <= placements.TTL
    placements.unplace(rds, "gpuA", job)
    assert placements.placed_on(rds, job) is None and job not in placements.placed_jobs(rds, "gpuA")
    assert placements.place(rds, "gpuB", job)  # free again: back in the queue, any instance may place it
    placements.unplace(rds, "gpuB", job)
