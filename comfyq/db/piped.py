"""One Redis round trip for the side effects of one step: writers add to a shared pipeline, sent once at its end.

A job's move sets off several Redis writes once it commits (queue positions,
run times, metrics, its event in the logs). Each is made by its own module,
and each alone would cost a round trip, which on a busy host is a context
switch to Redis and back. Inside ``gathered`` (comfyq.jobs.machine wraps a
move's commit and after-commit actions in one), ``write`` adds a writer's
commands to one pipeline sent when the block ends, then hands each writer its
own answers; outside it, ``write`` sends them at once. Writes are never read
back inside the block: a writer that needs its answers gets them in ``then``.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable, Iterator, NamedTuple

import redis

logger = logging.getLogger(__name__)

Build = Callable[[redis.client.Pipeline], Any]
Then = Callable[[list[Any]], None]  # a writer's answers, an error among them as an exception object
Failed = Callable[[Exception], None]  # Redis unreachable: nothing of the writer's was sent (or known to be)
_local = threading.local()


class _Writer(NamedTuple):
    first: int  # its first command's place in the pipeline
    count: int
    then: Then | None
    failed: Failed


class _Gather:
    """The pipeline of one ``gathered`` block and what each writer wants back."""

    def __init__(self, r: redis.Redis) -> None:
        self.redis = r
        self.pipe = r.pipeline(transaction=False)
        self.writers: list[_Writer] = []

    def add(self, build: Build, then: Then | None, failed: Failed) -> None:
        first = len(self.pipe.command_stack)
        build(self.pipe)
        self.writers.append(_Writer(first, len(self.pipe.command_stack) - first, then, failed))

    def send(self) -> None:
        if not self.writers:
            return
        try:
            answers = self.pipe.execute(raise_on_error=False) if len(self.pipe.command_stack) else []
        except (redis.RedisError, OSError) as exc:
            for writer in self.writers:
                _safely(writer.failed, exc)
            return
        for writer in self.writers:
            _answer(writer.then, writer.failed, answers[writer.first:writer.first + writer.count])


def _answer(then: Then | None, failed: Failed, answers: list[Any]) -> None:
    """Hand a writer its answers; one without ``then`` has its first error, if any, go to ``failed``."""
    if then is not None:
        _safely(then, answers)
        return
    error = next((answer for answer in answers if isinstance(answer, Exception)), None)
    if error is not None:
        _safely(failed, error)


def _safely(action: Callable[[Any], None], arg: Any) -> None:
    """Run one writer's callback; its failure is logged and never stops the others'."""
    try:
        action(arg)
    except Exception:  # noqa: BLE001 - one writer's bug must not lose the others' answers
        logger.exception("a Redis writer's callback failed")


@contextlib.contextmanager
def gathered(r: redis.Redis) -> Iterator[None]:
    """Send the writes made inside through ``r`` as one pipeline when the block ends (nested: the outer one sends)."""
    if getattr(_local, "gather", None) is not None:
        yield
        return
    gather = _local.gather = _Gather(r)
    try:
        yield
    finally:
        _local.gather = None
        gather.send()


def write(r: redis.Redis, build: Build, failed: Failed, then: Then | None = None) -> None:
    """Send the commands ``build`` adds to a pipeline: with the block's others inside ``gathered``, else now.

    ``then`` gets this writer's answers once sent; ``failed`` gets the error if
    Redis could not be reached, or, without ``then``, the first command's error.
    """
    gather = getattr(_local, "gather", None)
    if gather is not None and gather.redis is r:
        gather.add(build, then, failed)
        return
    pipe = r.pipeline(transaction=False)
    build(pipe)
    try:
        answers = pipe.execute(raise_on_error=False) if len(pipe.command_stack) else []
    except (redis.RedisError, OSError) as exc:
        failed(exc)
        return
    _answer(then, failed, answers)
