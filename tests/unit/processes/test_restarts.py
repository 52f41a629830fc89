"""The restart policy: growing delays, a window that forgets old deaths, and the crash-loop rule."""
from __future__ import annotations

from comfyq.processes.restarts import Restarts, backoff, ordinal


def test_backoff_doubles_from_its_first_delay_up_to_its_cap() -> None:
    assert [backoff(n, 0.5, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff(0, 1.0, 30.0) == 1.0


def test_ordinals() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]


def test_the_fifth_death_within_the_window_is_a_crash_loop_and_old_deaths_are_forgotten() -> None:
    now = [0.0]
    restarts = Restarts(limit=5, window=60.0, first=0.5, cap=8.0, clock=lambda: now[0])
    delays = []
    for _ in range(4):
        delays.append(restarts.died())
        now[0] += 10
    assert delays == [0.5, 1.0, 2.0, 4.0]
    now[0] = 61.0  # the first death (at 0) is out of the window: 4 in it with this one
    assert restarts.died() == 4.0 and restarts.recent() == 4
    assert restarts.died() is None  # 5 within 60 s


def test_a_child_that_dies_rarely_always_restarts_at_once() -> None:
    now = [0.0]
    restarts = Restarts(clock=lambda: now[0])
    for _ in range(20):
        assert restarts.died() == 0.5
        now[0] += 61
