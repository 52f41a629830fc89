"""Which held jobs a worker places ahead, and which messages it lists."""
from __future__ import annotations

from comfyq.worker.lookahead import next_jobs, worth_noting


def test_the_next_jobs_are_the_first_others_listed_up_to_depth_minus_one() -> None:
    listed = ["a", "b", "c", "d"]
    assert next_jobs(listed, "a", 2) == ["b"]
    assert next_jobs(listed, "b", 3) == ["a", "c"]
    assert next_jobs(listed, "z", 3) == ["a", "b"]


def test_a_depth_of_one_places_nothing() -> None:
    assert next_jobs(["a", "b"], "a", 1) == [] and next_jobs([], "a", 4) == []


def test_only_job_runs_due_now_are_listed_and_only_with_a_lookahead() -> None:
    assert worth_noting(2, "comfyq.run_job", "comfyq.run_job", None)
    assert not worth_noting(1, "comfyq.run_job", "comfyq.run_job", None)
    assert not worth_noting(2, "comfyq.run_job", "comfyq.run_job", "2026-12-05T21:00:00")  # a countdown
    assert not worth_noting(2, "comfyq.reconcile", "comfyq.run_job", None)
