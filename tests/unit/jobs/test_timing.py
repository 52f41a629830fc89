"""Start estimates: the turn arithmetic of ``timing.starts_in``."""
from __future__ import annotations

import pytest

from comfyq.jobs.timing import Lane, starts_in


def test_no_lanes_no_estimate() -> None:
    assert starts_in(3, []) is None


def test_an_idle_instance_starts_the_first_job_now() -> None:
    assert starts_in(0, [Lane(0.0, 2.0)]) == 0.0


def test_one_busy_instance_takes_a_job_each_turn_after_its_running_one() -> None:
    # Running job ends in 1.5 s, then one job every 2 s: the 4th waiting job (3 ahead) starts at 1.5 + 3 * 2.
    assert starts_in(3, [Lane(1.5, 2.0)]) == pytest.approx(7.5)


def test_two_equal_instances_share_the_turns() -> None:
    lanes = [Lane(0.5, 1.0), Lane(1.0, 1.0)]
    # Turns begin at 0.5, 1.0, 1.5, 2.0, 2.5, ...: the job with k ahead takes the (k + 1)-th.
    assert [starts_in(k, lanes) for k in range(5)] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5])


def test_a_faster_instance_takes_more_turns() -> None:
    lanes = [Lane(0.0, 1.0), Lane(0.0, 3.0)]
    # Fast: 0, 1, 2, 3, 4 ...; slow: 0, 3, 6 ...: in time order 0, 0, 1, 2, 3, 3, 4.
    assert [starts_in(k, lanes) for k in range(7)] == pytest.approx([0, 0, 1, 2, 3, 3, 4])


def test_a_long_backlog_is_counted_in_bounded_time() -> None:
    lanes = [Lane(0.2, 0.5)] * 4
    assert starts_in(99_999, lanes) == pytest.approx(0.2 + (100_000 // 4 - 1) * 0.5 + (0.5 if 100_000 % 4 else 0))
