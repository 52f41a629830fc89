"""Job events in Redis: an ordered log per job and per user, announced on pub/sub; and the cancel flag.

Only the announcer (comfyq.events.announcer) appends to the logs; the SSE
streams (comfyq.events.streams, hub and held) read them.

Each event is appended to two Redis streams, the job's and its owner's, and
published on a channel named like the stream as ``"<previous id> <id> <json>"``.
Ids are the streams' own (``<ms>-<n>``): they only grow, even across a log's
expiry or a Redis restart. One Lua script does all of it, so the order on the
channel is the order in the log, and a listener whose last id is not the
message's previous one knows it missed something and reads the log again.
Every entry keeps its previous id too, so a log tells whether it still holds
everything after a given id. Nothing is appended to a job's log after its
final event. Logs expire ``LOG_TTL`` seconds after their last event and keep
about ``JOB_LOG_MAX`` / ``USER_LOG_MAX`` entries.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable, Iterable

import redis

from ..db import piped
from ..db.timestamps import isoformat, utcnow

JOB_LOG = "comfyq:events:job:{}"
USER_LOG = "comfyq:events:user:{}"
CHANNELS = "comfyq:events:*"  # every log's channel, for one pattern subscription
CANCEL_KEY = "comfyq:cancel:{}"
FINAL_TYPES = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
LOG_TTL = 86400
JOB_LOG_MAX = 5000
USER_LOG_MAX = 20000
START = "0-0"  # the previous id of a log's first event
EVENT_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")

_APPEND = """
if redis.call('EXISTS', KEYS[1] .. ':done') == 1 then return false end
local function append(log, maxlen, body)
  local prev = redis.call('GET', log .. ':last') or '0-0'
  local id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'e', body, 'p', prev)
  redis.call('SET', log .. ':last', id, 'EX', ARGV[2])
  redis.call('EXPIRE', log, ARGV[2])
  redis.call('PUBLISH', log, prev .. ' ' .. id .. ' ' .. body)
  return id
end
local id = append(KEYS[1], ARGV[3], ARGV[1])
if ARGV[5] == '1' then redis.call('SET', KEYS[1] .. ':done', '1', 'EX', ARGV[2]) end
if #KEYS == 2 then append(KEYS[2], ARGV[4], ARGV[1]) end
return id
"""
_SHA = hashlib.sha1(_APPEND.encode()).hexdigest()


def job_log(job_id: str) -> str:
    """Return the key (and channel) of a job's event log."""
    return JOB_LOG.format(job_id)


def done_key(job_id: str) -> str:
    """Return the key that is set once a job's final event is in its log."""
    return job_log(job_id) + ":done"


def user_log(user_id: str) -> str:
    """Return the key (and channel) of a user's event log: every event of every job of theirs."""
    return USER_LOG.format(user_id)


def order(event_id: str) -> tuple[int, int]:
    """Return an event id as a comparable pair."""
    ms, _, n = event_id.partition("-")
    return int(ms), int(n or 0)


def publish(r: redis.Redis, job_id: str, user_id: str | None, event: dict[str, Any]) -> str | None:
    """Append one event of a job to its logs and announce it; return its id in the job's log (None: job over)."""
    return publish_many(r, [(job_id, user_id, event)])[0]


def _calls(items: Iterable[tuple[str, str | None, dict[str, Any]]]) -> list[tuple[list[str], list[Any]]]:
    """Return the script's keys and arguments for each event."""
    calls = []
    now = isoformat(utcnow())
    for job_id, user_id, event in items:
        body = json.dumps({**event, "job_id": job_id, "at": now}, separators=(",", ":"))
        keys = [job_log(job_id)] + ([user_log(user_id)] if user_id else [])
        calls.append((keys, [body, LOG_TTL, JOB_LOG_MAX, USER_LOG_MAX, int(event.get("type") in FINAL_TYPES)]))
    return calls


def _ids(answers: list[Any]) -> list[str | None]:
    """Return the script's answers as event ids (None: the job was over)."""
    return [found.decode() if isinstance(found, bytes) else None for found in answers]


def publish_many(r: redis.Redis, items: Iterable[tuple[str, str | None, dict[str, Any]]]) -> list[str | None]:
    """Publish several events in one round trip; return their ids in their jobs' logs."""
    calls = _calls(items)
    for attempt in range(2):
        pipe = r.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(_SHA, len(keys), *keys, *args)
        try:
            return _ids(pipe.execute())
        except redis.exceptions.NoScriptError:
            if attempt:
                raise
            r.script_load(_APPEND)  # a new or restarted Redis
    return []


def publish_piped(r: redis.Redis, items: list[tuple[str, str | None, dict[str, Any]]],
                  then: Callable[[list[str | None]], None], failed: Callable[[Exception], None]) -> None:
    """Publish events with the step's other Redis writes (comfyq.db.piped); ``then`` gets their ids."""
    calls = _calls(items)

    def build(pipe: redis.client.Pipeline) -> None:
        for keys, args in calls:
            pipe.evalsha(_SHA, len(keys), *keys, *args)

    def answered(answers: list[Any]) -> None:
        if any(isinstance(found, redis.exceptions.NoScriptError) for found in answers):
            # A new or restarted Redis: every call failed alike, so sending them all again keeps their order.
            try:
                r.script_load(_APPEND)
                ids = publish_many(r, items)
            except (redis.RedisError, OSError) as exc:
                failed(exc)
                return
            then(ids)
            return
        error = next((found for found in answers if isinstance(found, Exception)), None)
        if error is not None:
            failed(error)
            return
        then(_ids(answers))
    piped.write(r, build, failed, answered)


def parse(message: bytes | str) -> tuple[str, str, str]:
    """Split a channel message into the previous id, its id and its JSON body."""
    text = message.decode() if isinstance(message, bytes) else message
    prev, event_id, body = text.split(" ", 2)
    return prev, event_id, body


def entries(raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[tuple[str, str]]:
    """Return XRANGE's answer on a log as (id, JSON body) pairs."""
    return [(entry_id.decode(), fields[b"e"].decode()) for entry_id, fields in raw]


def read_after(r: redis.Redis, log: str, after: str) -> list[tuple[str, str]]:
    """Return the logged events after id ``after``, oldest first."""
    return entries(r.xrange(log, f"({after}", "+"))


def last_id(r: redis.Redis, log: str) -> str:
    """Return the id of the latest event in ``log`` (``START``: none)."""
    found = r.get(log + ":last")
    return found.decode() if found else START


def complete(r: redis.Redis, log: str) -> bool:
    """Return whether ``log`` still holds every event since its first (nothing trimmed or expired)."""
    first = r.xrange(log, "-", "+", count=1)
    return bool(first) and first[0][1].get(b"p") == START.encode()


def resumable(r: redis.Redis, log: str, after: str) -> bool:
    """Return whether every event after id ``after`` is still in the log."""
    if after == last_id(r, log):
        return True
    first = r.xrange(log, "-", "+", count=1)
    if not first:
        return False
    oldest, prev = first[0][0].decode(), first[0][1].get(b"p", b"").decode()
    if after == prev:
        return True
    return order(oldest) <= order(after) and bool(r.xrange(log, after, after))  # an id this log gave


def request_cancel(r: redis.Redis, job_id: str, ttl: int) -> None:
    """Ask whichever worker runs ``job_id`` to interrupt it."""
    r.set(CANCEL_KEY.format(job_id), "1", ex=max(ttl, 1))


def cancel_requested(r: redis.Redis, job_id: str) -> bool:
    """Return whether a cancel was asked for ``job_id``."""
    return bool(r.exists(CANCEL_KEY.format(job_id)))
