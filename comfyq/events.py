"""Job events in Redis: an ordered log per job and per user, announced on pub/sub; and the cancel flag.

Each event is appended to two Redis streams, the job's and its owner's, under
a sequence number of that stream (``1, 2, 3 …``, the stream entry ``<n>-0``),
and published on a channel named like the stream as ``"<n> <json>"``. One Lua
script does all of it, so the order on the channel is the order in the log:
a listener that sees number ``n + 2`` after ``n`` knows exactly what it
missed and reads it back from the log. Logs expire ``LOG_TTL`` seconds after
their last event and keep about ``JOB_LOG_MAX`` / ``USER_LOG_MAX`` entries.
"""
from __future__ import annotations

import json
import time
from typing import Any, Iterable

import redis

JOB_LOG = "comfyq:events:job:{}"
USER_LOG = "comfyq:events:user:{}"
CHANNELS = "comfyq:events:*"  # every log's channel, for one pattern subscription
CANCEL_KEY = "comfyq:cancel:{}"
LOG_TTL = 86400
JOB_LOG_MAX = 5000
USER_LOG_MAX = 20000

_APPEND = """
local function append(log, seqkey, maxlen, body)
  local n = redis.call('INCR', seqkey)
  redis.call('XADD', log, 'MAXLEN', '~', maxlen, n .. '-0', 'e', body)
  redis.call('EXPIRE', log, ARGV[2])
  redis.call('EXPIRE', seqkey, ARGV[2])
  redis.call('PUBLISH', log, n .. ' ' .. body)
  return n
end
local n = append(KEYS[1], KEYS[2], ARGV[3], ARGV[1])
if #KEYS == 4 then append(KEYS[3], KEYS[4], ARGV[4], ARGV[1]) end
return n
"""


def job_log(job_id: str) -> str:
    """Return the key (and channel) of a job's event log."""
    return JOB_LOG.format(job_id)


def user_log(user_id: str) -> str:
    """Return the key (and channel) of a user's event log: every event of every job of theirs."""
    return USER_LOG.format(user_id)


def publish(r: redis.Redis, job_id: str, user_id: str | None, event: dict[str, Any]) -> int:
    """Append one event of a job to its logs, announce it, and return its number in the job's log."""
    return int(publish_many(r, [(job_id, user_id, event)])[0])


def publish_many(r: redis.Redis, items: Iterable[tuple[str, str | None, dict[str, Any]]]) -> list[int]:
    """Publish several events in one round trip; return their numbers in their jobs' logs."""
    script = r.register_script(_APPEND)
    pipe = r.pipeline(transaction=False)
    now = round(time.time(), 3)
    for job_id, user_id, event in items:
        body = json.dumps({**event, "job_id": job_id, "at": now}, separators=(",", ":"))
        keys = [job_log(job_id), job_log(job_id) + ":seq"]
        if user_id:
            keys += [user_log(user_id), user_log(user_id) + ":seq"]
        script(keys=keys, args=[body, LOG_TTL, JOB_LOG_MAX, USER_LOG_MAX], client=pipe)
    return [int(n) for n in pipe.execute()]


def parse(message: bytes | str) -> tuple[int, str]:
    """Split a channel message into its number and its JSON body."""
    text = message.decode() if isinstance(message, bytes) else message
    number, _, body = text.partition(" ")
    return int(number), body


def last_number(r: redis.Redis, log: str) -> int:
    """Return the number of the latest event in ``log`` (0: none)."""
    return int(r.get(log + ":seq") or 0)


def read_after(r: redis.Redis, log: str, after: int, upto: int | None = None) -> list[tuple[int, str]]:
    """Return the logged events numbered above ``after`` (up to ``upto``), oldest first."""
    return entries(r.xrange(log, f"({after}-0", f"{upto}-0" if upto is not None else "+"))


def entries(raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[tuple[int, str]]:
    """Return XRANGE's answer on a log as (number, JSON body) pairs."""
    return [(int(entry_id.split(b"-")[0]), fields[b"e"].decode()) for entry_id, fields in raw]


def resumable(r: redis.Redis, log: str, after: int) -> bool:
    """Return whether every event after number ``after`` is still in the log."""
    last = last_number(r, log)
    if after > last:
        return False  # a number from before the log expired
    if after == last:
        return True
    first = r.xrange(log, "-", "+", count=1)
    return bool(first) and int(first[0][0].split(b"-")[0]) <= after + 1


def request_cancel(r: redis.Redis, job_id: str, ttl: int) -> None:
    """Ask whichever worker runs ``job_id`` to interrupt it."""
    r.set(CANCEL_KEY.format(job_id), "1", ex=max(ttl, 1))


def cancel_requested(r: redis.Redis, job_id: str) -> bool:
    """Return whether a cancel was asked for ``job_id``."""
    return bool(r.exists(CANCEL_KEY.format(job_id)))
