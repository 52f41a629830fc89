"""The hub nudges whole-fleet followers (the dashboard) at any job event, once per burst."""
from __future__ import annotations

from comfyq.events.hub import ANY, NUDGE, Follower, Hub
from tests.conftest import NOWHERE


def message(log: str, prev: str, event_id: str) -> dict[str, object]:
    """Return a pub/sub message as the hub hears one."""
    return {"type": "pmessage", "channel": log.encode(),
            "data": f'{prev} {event_id} {{"type":"progress","job_id":"j"}}'.encode()}


def test_a_fleet_follower_gets_one_nudge_per_burst_and_a_job_follower_its_events() -> None:
    hub = Hub(NOWHERE, lambda ids: {})
    fleet, job = Follower(ANY, None, False), Follower("comfyq:events:job:j", "j", False)
    hub.followers[ANY].add(fleet)
    hub.followers[job.log].add(job)
    for n in range(3):
        hub._hand_out(message(job.log, f"1-{n}", f"1-{n + 1}"))
    assert fleet.queue.qsize() == 1 and fleet.queue.get_nowait() == NUDGE
    assert job.queue.qsize() == 3
    hub._hand_out(message("comfyq:events:user:u", "0-0", "2-1"))  # anyone's event: nudged again
    assert fleet.queue.get_nowait() == NUDGE
