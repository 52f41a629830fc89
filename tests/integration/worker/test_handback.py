"""A GPU worker's main process sends back a job it received while busy once another instance idles for it."""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import redis

from comfyq.config.parsers import Instance, capability_queue
from comfyq.fleet import instances, placements
from comfyq.fleet.lease import PRESENCE_KEY
from comfyq.worker import handback, lookahead
from tests.integration.chaos import wait_until


def test_a_job_received_while_busy_goes_back_once_an_instance_idles_for_it(rds: redis.Redis) -> None:
    me, peer = (Instance(name, "http://127.0.0.1:9", frozenset({"hbcap"})) for name in ("hbme", "hbpeer"))
    queue = capability_queue(["hbcap"])  # a queue of this test's own: nothing else fills it
    sent: list[Any] = []
    watch = handback.Watch(handback.HandBack(me, {me.name: me, peer.name: peer}, rds), sent.append)
    request = SimpleNamespace(id=f"job-{time.monotonic_ns()}")
    lookahead.note(rds, me.name, request.id)
    rds.set(PRESENCE_KEY.format(peer.name), 1, ex=60)
    instances.report(rds, peer.name, {"state": instances.HEALTHY, "intake": "open"})
    instances.set_running(rds, peer.name, "its-own-job")
    try:
        watch.watch(request, queue)  # the peer is busy: the job stays, and the watch ends after its second
        wait_until(lambda: request.id not in watch.watched, timeout=10)
        assert sent == [] and lookahead.held(rds, me.name) == [request.id]
        assert not placements.handed_back(rds, me.name, request.id)
        instances.set_running(rds, peer.name, None)  # the peer's job ended: it waits, and the queue is empty
        watch.watch(request, queue)
        wait_until(lambda: sent, timeout=5)
        assert sent == [request] and lookahead.held(rds, me.name) == []
        assert lookahead.begin(rds, me.name, request.id) == (True, None)  # this worker's own message is void
    finally:
        rds.delete(PRESENCE_KEY.format(peer.name), instances.STATUS_KEY.format(peer.name), lookahead.KEY.format(me.name))


def test_a_job_its_own_instance_alone_serves_is_never_watched(rds: redis.Redis) -> None:
    me, peer = Instance("hbme2", "http://127.0.0.1:9"), Instance("hbpeer2", "http://127.0.0.1:9")
    watch = handback.Watch(handback.HandBack(me, {me.name: me, peer.name: peer}, rds), lambda request: None)
    watch.watch(SimpleNamespace(id="pinned"), me.queue)
    assert watch.watched == {} and watch.thread is None


def test_a_give_back_that_cannot_happen_leaves_the_job_held_here_and_its_message_valid(rds: redis.Redis) -> None:
    me = "hbme3"
    placed, failing, fine = (f"{kind}-{time.monotonic_ns()}" for kind in ("placed", "failing", "fine"))
    sent: list[str] = []

    def refuse() -> None:
        raise OSError("the broker is down")
    try:
        for job_id in (placed, failing, fine):
            lookahead.note(rds, me, job_id)
        assert placements.place(rds, me, placed)  # placed between the look and the give-back
        assert not handback.give_back(rds, me, placed, lambda: sent.append(placed))
        assert not handback.give_back(rds, me, failing, refuse)
        assert sent == [] and sorted(lookahead.held(rds, me)) == sorted([placed, failing, fine])
        assert not placements.handed_back(rds, me, placed) and not placements.handed_back(rds, me, failing)
        assert handback.give_back(rds, me, fine, lambda: sent.append(fine))
        assert sent == [fine] and fine not in lookahead.held(rds, me) and placements.handed_back(rds, me, fine)
    finally:
        placements.unplace(rds, me, placed)
        rds.delete(lookahead.KEY.format(me), *(placements.HANDED_KEY.format(job, me) for job in (placed, failing, fine)))
