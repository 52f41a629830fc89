"""A soft limit counted from the prompt's own execution_start."""
from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from comfyq.worker.limits import SoftDeadline, as_datetime, execution_start, history_start


def test_the_deadline_counts_from_execution_start_not_from_its_creation() -> None:
    deadline = SoftDeadline(2.0)
    deadline.check(now=1e12)  # not begun: however long it waited, no limit yet
    deadline.begin(1000.0)
    deadline.begin(1500.0)  # only the first start counts
    assert deadline.left(now=1001.5) == pytest.approx(0.5)
    deadline.check(now=1001.9)
    with pytest.raises(SoftTimeLimitExceeded):
        deadline.check(now=1002.0)


def test_no_soft_limit_never_fires() -> None:
    deadline = SoftDeadline(None)
    deadline.begin(0.0)
    assert deadline.left(now=1e9) is None
    deadline.check(now=1e9)


def test_execution_start_reads_the_message_timestamp_in_milliseconds() -> None:
    assert execution_start({"prompt_id": "p", "timestamp": 1765000000123}) == pytest.approx(1765000000.123)
    assert execution_start({"prompt_id": "p"}, received=42.0) == 42.0
    assert as_datetime(0.0).isoformat() == "1970-01-01T00:00:00+00:00"


def test_history_start_finds_execution_start_among_the_status_messages() -> None:
    entry = {"status": {"messages": [["execution_cached", {"nodes": []}],
                                     ["execution_start", {"prompt_id": "p", "timestamp": 5000}],
                                     ["execution_success", {"prompt_id": "p", "timestamp": 9000}]]}}
    assert history_start(entry) == 5.0
    assert history_start({"status": {"messages": []}}) is None and history_start({}) is None
