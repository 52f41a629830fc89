"""One pipeline for a step's Redis writes (comfyq.db.piped), on a real Redis; and a move's writes sent in one."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
from flask import Flask

from comfyq.db import piped
from comfyq.db.extensions import db, get_redis
from comfyq.db.models import Job
from comfyq.events import log
from comfyq.jobs import positions
from comfyq.jobs.machine import JobStatus, transition
from tests.conftest import NOWHERE, offline_app, txt2img


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.delete("piped:a", "piped:b", "piped:list")
    yield client
    client.delete("piped:a", "piped:b", "piped:list")


def test_writes_inside_are_sent_together_at_the_end(r: redis.Redis) -> None:
    answers: dict[str, list[Any]] = {}
    with piped.gathered(r):
        piped.write(r, lambda pipe: pipe.set("piped:a", 1).incr("piped:a"), pytest.fail,
                    lambda got: answers.__setitem__("a", got))
        piped.write(r, lambda pipe: pipe.rpush("piped:list", "x"), pytest.fail,
                    lambda got: answers.__setitem__("b", got))
        assert r.get("piped:a") is None and "a" not in answers  # nothing sent yet
    assert answers == {"a": [True, 2], "b": [1]}
    assert r.get("piped:a") == b"2"


def test_nested_blocks_send_once_at_the_outer_end(r: redis.Redis) -> None:
    with piped.gathered(r):
        with piped.gathered(r):
            piped.write(r, lambda pipe: pipe.set("piped:a", 1), pytest.fail)
        assert r.get("piped:a") is None
    assert r.get("piped:a") == b"1"


def test_outside_a_block_or_on_another_client_writes_at_once(r: redis.Redis, redis_url: str) -> None:
    piped.write(r, lambda pipe: pipe.set("piped:a", 1), pytest.fail)
    assert r.get("piped:a") == b"1"
    other = redis.Redis.from_url(redis_url)
    with piped.gathered(r):
        piped.write(other, lambda pipe: pipe.set("piped:b", 1), pytest.fail)
        assert r.get("piped:b") == b"1"


def test_a_failed_command_goes_to_its_writer_alone(r: redis.Redis) -> None:
    failures: list[Exception] = []
    r.set("piped:a", "text")
    with piped.gathered(r):
        piped.write(r, lambda pipe: pipe.rpush("piped:a", "x"), failures.append)  # WRONGTYPE
        piped.write(r, lambda pipe: pipe.rpush("piped:list", "x"), pytest.fail)
    assert len(failures) == 1 and isinstance(failures[0], redis.ResponseError)
    assert r.lrange("piped:list", 0, -1) == [b"x"]


def test_unreachable_redis_fails_every_writer() -> None:
    down = redis.Redis.from_url(NOWHERE, socket_connect_timeout=0.5)
    failures: list[Exception] = []
    with piped.gathered(down):
        piped.write(down, lambda pipe: pipe.set("piped:a", 1), failures.append)
        piped.write(down, lambda pipe: pipe.set("piped:b", 1), failures.append, lambda got: pytest.fail())
    assert len(failures) == 2 and all(isinstance(exc, redis.ConnectionError) for exc in failures)


def test_events_published_in_a_block_keep_their_order_and_ids(r: redis.Redis) -> None:
    ids: list[str | None] = []
    job = "piped-job"
    r.delete(log.job_log(job), log.job_log(job) + ":last", log.done_key(job))
    r.script_flush()  # as after a Redis restart: the script is loaded again and the events sent in order
    with piped.gathered(r):
        for n in range(3):
            log.publish_piped(r, [(job, None, {"type": "progress", "n": n})], ids.extend, pytest.fail)
    found = log.read_after(r, log.job_log(job), log.START)
    assert [entry_id for entry_id, _ in found] == ids
    assert [body.count(f'"n":{n}') for n, (_, body) in enumerate(found)] == [1, 1, 1]


@pytest.fixture
def app(tmp_path: Path, redis_url: str) -> Iterator[Flask]:
    flask_app = offline_app(f"sqlite:///{tmp_path}/t.db", tmp_path / "out", REDIS_URL=redis_url)
    with flask_app.app_context():
        yield flask_app


def test_a_move_writes_to_redis_in_one_round_trip(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    job = Job(status=JobStatus.QUEUED.value, queue="comfy", workflow=txt2img(), user_id=None)
    db.session.add(job)
    db.session.commit()
    get_redis().zadd(positions.WAITING + "comfy", {job.id: 1})
    sent: list[int] = []
    execute = redis.client.Pipeline.execute

    def counted(self: redis.client.Pipeline, *args: Any, **kwargs: Any) -> Any:
        sent.append(len(self.command_stack))
        return execute(self, *args, **kwargs)
    monkeypatch.setattr(redis.client.Pipeline, "execute", counted)
    assert transition(job.id, JobStatus.RUNNING, [JobStatus.QUEUED], instance="gpu0")
    assert len(sent) == 1 and sent[0] > 3  # positions, the started event, metrics: together
    assert get_redis().zscore(positions.WAITING + "comfy", job.id) is None
    assert log.last_id(get_redis(), log.job_log(job.id)) != log.START
