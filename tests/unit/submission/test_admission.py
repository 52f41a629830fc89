"""Admission decisions on SQLite and PostgreSQL: caps, fairness, order (no broker involved)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from flask import Flask
from sqlalchemy import event as sqlalchemy_event, select

from comfyq.accounts import users as accounts, limits
from comfyq.submission import admission
from comfyq.db.extensions import db
from comfyq.db.models import AdmissionLock, Job, User
from tests.conftest import offline_app

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def app(tmp_path, database_url: str) -> Iterator[Flask]:
    flask_app = offline_app(database_url, tmp_path, "gpu0=http://127.0.0.1:1,gpu1=http://127.0.0.1:2",
                            MAX_RUNNING_PER_USER=2, MAX_ADMITTED=3)
    with flask_app.app_context():
        yield flask_app


def add_jobs(user: User, count: int, status: str = "pending", start: int = 0) -> list[str]:
    """Store ``count`` jobs of ``user``, one second apart from ``start``; return their ids."""
    jobs = [Job(user_id=user.id, status=status, queue="comfy", workflow={}, soft_time_limit=60, cost=1,
                created_at=T0 + timedelta(seconds=start + n)) for n in range(count)]
    db.session.add_all(jobs)
    db.session.commit()
    return [job.id for job in jobs]


def statuses(ids: list[str]) -> list[str]:
    """Return the statuses of jobs, in the order of ``ids``."""
    found = dict(db.session.execute(select(Job.id, Job.status).where(Job.id.in_(ids))).all())
    return [found[job_id] for job_id in ids]


def standings(held: dict[str, int], oldest: dict[str, Any], weight: dict[str, int] | None = None,
              served: dict[str, int] | None = None) -> dict[str, admission.Standing]:
    """Return the standing of each user in ``oldest``."""
    return {u: admission.Standing(held.get(u, 0), (weight or {}).get(u, 1), (served or {}).get(u), first)
            for u, first in oldest.items()}


def test_allocate_gives_one_slot_at_a_time_to_the_user_holding_fewest() -> None:
    oldest: dict[str, Any] = {"a": T0, "b": T0 + timedelta(seconds=5), "c": T0 + timedelta(seconds=1)}
    assert admission.allocate({"a": 5, "b": 1, "c": 2}, standings({"a": 2}, oldest), free=3) == ["c", "b", "c"]
    assert admission.allocate({"a": 5, "b": 1, "c": 2}, standings({}, oldest), free=3) == ["a", "c", "b"]
    assert admission.allocate({"a": 5, "b": 0}, standings({}, oldest), free=None) == ["a"] * 5
    assert admission.allocate({"a": 5}, standings({}, oldest), free=0) == []


def test_allocate_breaks_ties_by_least_recently_served_not_by_the_age_of_a_backlog() -> None:
    # hog's backlog is oldest, but hog was served at 7: the never-served newcomers and b (served at 3) go first.
    oldest: dict[str, Any] = {"hog": T0, "b": T0 + timedelta(seconds=9), "n1": T0 + timedelta(seconds=5),
                              "n2": T0 + timedelta(seconds=6)}
    got = admission.allocate({u: 3 for u in oldest}, standings({}, oldest, served={"hog": 7, "b": 3}), free=4,
                             served=7)
    assert got == ["n1", "n2", "b", "hog"]
    # Equal users, one slot at a time: round robin, whoever was served longest ago first.
    order, last = [], {"x": 1, "y": 2, "z": 3}
    for served in range(3, 12):
        (user,) = admission.allocate({u: 1 for u in last}, standings({}, dict.fromkeys(last, T0), served=last),
                                     free=1, served=served)
        order.append(user)
        last[user] = served + 1
    assert "".join(order) == "xyzxyzxyz"


def test_allocate_weights_hold_slots_in_proportion() -> None:
    oldest: dict[str, Any] = {"teacher": T0 + timedelta(seconds=1), "pupil": T0}
    got = admission.allocate({"teacher": 10, "pupil": 10}, standings({}, oldest, weight={"teacher": 3}), free=8)
    assert got.count("teacher") == 6 and got.count("pupil") == 2
    assert admission.allocate({"solo": 4}, standings({}, {"solo": T0}), free=10) == ["solo"] * 4  # alone: all


def test_a_backlog_just_served_loses_the_freed_slot_to_newcomers(app: Flask) -> None:
    from comfyq.jobs.machine import JobStatus, transition

    hog, ann, ben = (accounts.create_user(n, "user") for n in ("hog", "ann", "ben"))
    running = add_jobs(hog, 3, "running")  # the cap (3) is full with hog's jobs
    backlog = add_jobs(hog, 5, start=5)
    anns, bens = add_jobs(ann, 1, start=20), add_jobs(ben, 1, start=30)
    hog.last_served = 3
    db.session.commit()
    for ending in running[:2]:
        assert transition(ending, JobStatus.SUCCEEDED, [JobStatus.RUNNING])
    # hog still holds one slot; each end went to a newcomer, oldest first; hog's backlog waits.
    assert statuses(anns + bens) == ["queued", "queued"] and statuses(backlog) == ["pending"] * 5
    assert transition(running[2], JobStatus.SUCCEEDED, [JobStatus.RUNNING])
    assert statuses(backlog)[0] == "queued"  # nobody else waits: hog's next job
    served = {u.name: u.last_served for u in db.session.scalars(select(User))}
    assert served["ann"] < served["ben"] < served["hog"]


@pytest.mark.parametrize("last_served", [7, None])
def test_a_submission_that_stays_pending_gets_the_place_counting_would_give(app: Flask,
                                                                             last_served: int | None) -> None:
    ann = accounts.create_user("ann", "user")
    add_jobs(ann, 2, "queued")  # at her running cap (2): nothing more is admitted
    add_jobs(ann, 3, start=10)  # her backlog, the last one just submitted
    ann.last_served = last_served
    db.session.commit()
    places = []
    for added in (1, 0):  # told of the submission (no count when she was served before), then counting
        assert admission.admit(ann.id, added=added) == []
        places.append(db.session.info.pop(admission.PLACES))
        db.session.rollback()
    assert places[0] == places[1] and places[0][ann.id] is not None
    if last_served is not None:
        assert places[0][ann.id] == (float(last_served), 1)


def test_an_end_with_nobody_pending_decides_in_two_statements_and_takes_its_owner_out_of_the_rotation(
        app: Flask) -> None:
    ann, bob = accounts.create_user("ann", "user"), accounts.create_user("bob", "user")
    add_jobs(ann, 1, "queued")
    add_jobs(bob, 2, "succeeded")
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)
    sqlalchemy_event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert admission.admit(bob.id, freed=True) == []
    finally:
        sqlalchemy_event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) == 2 and statements[0].lstrip().upper().startswith("UPDATE")  # the admission row
    assert db.session.info.pop(admission.PLACES) == {bob.id: None}
    db.session.rollback()
    add_jobs(bob, 1, start=20)  # now someone waits: the whole decision runs, and admits it
    assert [job.user_id for job in admission.admit(bob.id, freed=True)] == [bob.id]


def test_a_user_gets_at_most_their_running_cap_in_creation_order(app: Flask) -> None:
    alice = accounts.create_user("alice", "user")
    ids = add_jobs(alice, 4)
    admitted = admission.admit(alice.id)
    db.session.commit()
    assert [job.id for job in admitted] == ids[:2]
    assert statuses(ids) == ["queued", "queued", "pending", "pending"]
    assert admission.admit(alice.id) == []  # nothing changed: still full


def test_the_global_cap_goes_to_the_user_with_fewest_jobs_in(app: Flask) -> None:
    alice, bob, carol = (accounts.create_user(n, "user") for n in ("alice", "bob", "carol"))
    add_jobs(alice, 2, "running")
    bobs, carols = add_jobs(bob, 3, start=10), add_jobs(carol, 3, start=5)
    admission.admit()
    db.session.commit()
    # One slot left (cap 3, alice holds 2): bob and carol hold none; carol's pending job is older.
    assert statuses(carols) == ["queued", "pending", "pending"] and statuses(bobs) == ["pending"] * 3


def test_own_limits_beat_role_limits_beat_global_ones(app: Flask) -> None:
    app.config["ROLE_LIMITS"] = {"student": {"max_running": 1, "max_waiting": 5}}
    pupil = accounts.create_user("pupil", "student")
    values, sources = limits.resolve(pupil, app.config)
    assert (values.max_running, values.max_waiting, values.rate_per_minute, values.weight) == (1, 5, 600, 1)
    assert sources == {"max_running": "role", "max_waiting": "role", "rate_per_minute": "global",
                       "weight": "default"}
    limits.set_limits(pupil, {"max_running": 3, "rate_per_minute": 0})
    values, sources = limits.resolve(pupil, app.config)
    assert (values.max_running, values.rate_per_minute, sources["max_running"]) == (3, 0, "user")
    ids = add_jobs(pupil, 4)
    admission.admit()
    db.session.commit()
    assert statuses(ids) == ["queued", "queued", "queued", "pending"]


@pytest.mark.parametrize("values, fragment", [
    ({"max_running": 0}, "at least 1 for max_running"),
    ({"max_waiting": -1}, "or more for the others"),
    ({"speed": 3}, "unknown limit 'speed'"),
])
def test_bad_limits_are_refused(app: Flask, values: dict[str, int], fragment: str) -> None:
    from comfyq.errors import InvalidRequest

    user = accounts.create_user("someone", "user")
    with pytest.raises(InvalidRequest, match=fragment):
        limits.set_limits(user, values)


def test_an_end_that_frees_the_last_global_slot_gives_it_to_the_fairest_user(app: Flask) -> None:
    from comfyq.jobs.machine import JobStatus, transition

    alice, bob, carol = (accounts.create_user(n, "user") for n in ("alice", "bob", "carol"))
    add_jobs(alice, 2, "running")
    (ending,) = add_jobs(carol, 1, "running")
    alices, bobs = add_jobs(alice, 1, start=5), add_jobs(bob, 2, start=10)
    # The cap (3) is full; carol's end frees its one slot, in the same commit as the end itself.
    assert transition(ending, JobStatus.SUCCEEDED, [JobStatus.RUNNING])
    assert statuses(bobs) == ["queued", "pending"] and statuses(alices) == ["pending"]
    assert statuses([ending]) == ["succeeded"]


def test_cancelling_a_pending_job_admits_nothing_and_refunds(app: Flask) -> None:
    from comfyq.accounts import credits
    from comfyq.jobs.machine import JobStatus, transition

    alice = accounts.create_user("alice", "user")
    credits.change(alice, 5, "grant", None, None)
    add_jobs(alice, 2, "running")
    first, second = add_jobs(alice, 2, start=5)
    credits.reserve(alice, 1)
    credits.record_debits(alice, [db.session.get(Job, first)])
    db.session.commit()
    assert transition(first, JobStatus.CANCELLED, [JobStatus.PENDING, JobStatus.QUEUED])
    assert statuses([first, second]) == ["cancelled", "pending"]  # alice is still at her cap of 2
    assert credits.balance_of(alice.id) == credits.ledger_sum(alice.id) == 5


def test_pending_positions_are_exactly_the_order_fair_share_admits_in(app: Flask) -> None:
    """Equal weights, a backlog holding slots, users served before and never: each position is exact."""
    from comfyq.jobs import positions
    from comfyq.jobs.machine import JobStatus, transition

    hog, teacher = accounts.create_user("hog", "user"), accounts.create_user("teach", "teacher")
    kids = [accounts.create_user(f"kid{n}", "student") for n in range(4)]
    running = add_jobs(hog, 2, "running")
    waiting = add_jobs(hog, 5, start=1) + add_jobs(teacher, 3, start=20)
    for n, kid in enumerate(kids):
        waiting += add_jobs(kid, 1 + n % 2, start=30 + n)
    hog.last_served, kids[2].last_served = 2, 1  # kid2 was served before, long ago
    db.session.get(AdmissionLock, 1).served = 2
    db.session.commit()
    admission.admit()  # the one free slot (cap 3)
    db.session.commit()
    predicted = {job.id: positions.counted_position(job) for job in db.session.scalars(
        select(Job).where(Job.id.in_(waiting)))}
    # Nobody else arrives; jobs start in the order they are admitted and end in the order they started.
    started = list(db.session.scalars(select(Job.id).where(Job.id.in_(waiting), Job.status == "queued")))
    in_progress = running + started
    while len(started) < len(waiting):
        ending = in_progress.pop(0)
        before = set(started)
        transition(ending, JobStatus.RUNNING, [JobStatus.QUEUED])
        assert transition(ending, JobStatus.SUCCEEDED, [JobStatus.RUNNING])
        new = [j for j in db.session.scalars(select(Job.id).where(Job.id.in_(waiting), Job.status == "queued"))
               if j not in before]
        assert len(new) <= 1
        started += new
        in_progress += new
    actual = {job_id: n for n, job_id in enumerate(started)}
    assert {j: (predicted[j], actual[j]) for j in waiting if predicted[j] != actual[j]} == {}


def test_a_rolled_back_admission_tells_its_jobs_are_pending_again(app: Flask,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from comfyq.events import announcer

    alice = accounts.create_user("alice", "user")
    ids = add_jobs(alice, 2)
    sent: list[str] = []
    undone: list[list[tuple[Any, ...]]] = []
    monkeypatch.setattr(admission, "send", lambda jobs: sent.extend(job.id for job in jobs) or [])
    monkeypatch.setattr(announcer, "admission_undone", undone.append)

    def refuse() -> None:
        raise OperationalError("COMMIT", {}, Exception("database is locked"))
    monkeypatch.setattr(db.session, "commit", refuse)
    assert admission.admit_and_dispatch() == []
    monkeypatch.undo()
    assert sent == ids  # told and sent before the commit that failed
    assert [(job_id, user_id, queue) for job_id, user_id, queue, _ in undone[0]] == [
        (job_id, alice.id, "comfy") for job_id in ids]
    assert statuses(ids) == ["pending", "pending"]


def test_the_next_jobs_position_is_the_one_it_then_gets(app: Flask) -> None:
    """What an estimate tells (counted in the DB here, without Redis) is the position the job then reports."""
    from comfyq.jobs import positions

    hog, served, fresh = (accounts.create_user(n, "user") for n in ("hog", "served", "fresh"))
    add_jobs(hog, 3, "running")  # the global cap (3) is full: every new job waits pending
    add_jobs(hog, 4, start=1)
    add_jobs(served, 2, start=10)
    hog.last_served, served.last_served = 3, 1
    db.session.commit()
    for n, user in enumerate((hog, served, fresh)):
        predicted = positions.next_pending_position(user, "comfy", 1)
        (job_id,) = add_jobs(user, 1, start=100 + n)
        assert positions.counted_position(db.session.get(Job, job_id)) == predicted, user.name
    assert predicted == 0  # fresh, never served, is first in the rotation: nothing starts before its job
