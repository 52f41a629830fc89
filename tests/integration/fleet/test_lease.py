"""A worker's lease renews exactly the messages it holds, and says when the worker is gone."""
from __future__ import annotations

import time

import redis

from comfyq.fleet.lease import Lease, is_alive
from comfyq.jobs.broker import HeldMessages


def test_renews_held_messages_only_and_releases_presence(rds: redis.Redis) -> None:
    options = {"visibility_timeout": 8, "unacked_index_key": "test_unacked_index"}
    rds.zadd("test_unacked_index", {"held": time.time() - 60, "other": time.time() - 60})
    lease = Lease("leasetest", "leasetest@host", rds, HeldMessages(rds, options))
    try:
        lease.hold("held")
        lease.hold("acked-meanwhile")
        lease.renew()
        scores = dict(rds.zrange("test_unacked_index", 0, -1, withscores=True))
        assert time.time() - scores[b"held"] < 2  # renewed: no restore will pick it up
        assert time.time() - scores[b"other"] > 50  # another worker's message is not ours to keep
        assert b"acked-meanwhile" not in scores and lease.tags == {"held"}  # never re-added, then forgotten
        assert is_alive(rds, "leasetest") and 2 <= rds.ttl("comfyq:worker:leasetest") <= 5
    finally:
        lease.stop(release=True)
        rds.delete("test_unacked_index")
    assert not is_alive(rds, "leasetest")
