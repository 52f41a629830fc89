"""Hold a submission's answer while it waits (``Prefer: wait``, see ``prefer``), in the event loop, never a thread.

``comfyq.asgi`` keeps the view's 202 unsent and calls ``answer_held``: it
waits on the hub for the submission's jobs to end, at most the seconds
applied. If they end, Flask is asked once more, for the job (or batch) as it
is now (``then``, a GET as the same caller), and that is the answer: 200.
Otherwise, or if that read fails, the kept 202 goes out unchanged. Both say
``Preference-Applied``. A client that leaves while waiting is simply not
answered: its jobs run on, nothing is cancelled.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Awaitable, Callable

from redis.exceptions import RedisError

from ..events.hub import Hub
from ..events.waits import JobsWait
from .prefer import APPLIED

logger = logging.getLogger(__name__)
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Message, Receive, Send], Awaitable[None]]
NOT_READ_BACK = (b"content-length", b"content-type", b"transfer-encoding", b"prefer")


async def answer_held(hold: dict[str, Any], kept: list[Message], scope: Message, receive: Receive, send: Send,
                      hub: Hub, app: App) -> None:
    """Wait for the held submission's jobs, then answer with their final state (200) or the kept 202."""
    wait = JobsWait(hub, [str(job_id) for job_id in hold["jobs"]])
    applied = (APPLIED.lower().encode(), f"wait={int(hold['wait'])}".encode())
    left = False

    async def watch_disconnect() -> None:
        """Stop waiting when the client leaves."""
        nonlocal left
        while (await receive())["type"] != "http.disconnect":
            pass
        left = True
        wait.stop()

    watcher = asyncio.create_task(watch_disconnect())
    try:
        ended = await wait.run(float(hold["wait"]))
    except asyncio.CancelledError:  # the server stops: answer as without waiting
        with contextlib.suppress(Exception):
            await replay(send, kept, applied)
        raise
    except (RedisError, OSError) as exc:
        logger.warning("a submission's wait for jobs %s ended early: %s", hold["jobs"], exc)
        ended = False
    finally:
        watcher.cancel()
    if left:
        return
    final = await read_back(app, scope, str(hold["then"])) if ended else None
    await replay(send, final or kept, applied)


async def read_back(app: App, scope: Message, path: str) -> list[Message] | None:
    """Return Flask's answer to GET ``path`` by the submission's caller; None unless it is a 200."""
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in NOT_READ_BACK]
    request = {**scope, "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
               "headers": headers}
    got: list[Message] = []

    async def no_body() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def keep(message: Message) -> None:
        got.append(message)

    try:
        await app(request, no_body, keep)
    except Exception:  # the 202 is still a true answer
        logger.exception("the final state of a held submission could not be read (%s)", path)
        return None
    if not got or got[0]["type"] != "http.response.start" or got[0]["status"] != 200:
        logger.warning("the final state of a held submission could not be read (%s): %s", path,
                       got[0].get("status") if got else "no answer")
        return None
    return got


async def replay(send: Send, messages: list[Message], header: tuple[bytes, bytes]) -> None:
    """Send a kept answer, with one more header."""
    start, *body = messages
    await send({**start, "headers": [*start.get("headers", []), header]})
    for message in body:
        await send(message)
