"""Fair share and limits through real workers on two simulators (global cap 2, one running slot per GPU each)."""
from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from comfyq.db.extensions import db
from comfyq.db.models import Job
from tests.conftest import txt2img
from tests.integration.chaos import wait_until
from tests.integration.conftest import TERMINAL, new_user, submit, wait_for

QUICK = {"3": {"step_seconds": 0.1}}  # three steps: about 0.3 s a job


def moment(stamp: str) -> datetime:
    """Parse an API timestamp."""
    return datetime.fromisoformat(stamp).astimezone(timezone.utc)


def finish(client: FlaskClient, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cancel whatever of ``jobs`` has not ended, wait for all to end, and return them as they ended."""
    for job in jobs:
        client.post(f"/v1/jobs/{job['id']}/cancel")
    return [wait_for(client, job["id"], TERMINAL, timeout=30) for job in jobs]


def test_a_single_job_overtakes_a_flood_within_one_job_per_gpu(app: Flask) -> None:
    flooder, newcomer = new_user(app, "fair-a"), new_user(app, "fair-b")
    flood = [submit(flooder, txt2img(seed=i, sim=QUICK)) for i in range(50)]
    assert [j["status"] for j in flood].count("pending") >= 45  # at most its cap of 2 (+ ends meanwhile) admitted
    single = submit(newcomer, txt2img(seed=999, sim=QUICK))
    done = wait_for(newcomer, single["id"], timeout=30)
    ended = finish(flooder, flood)
    assert done["status"] == "succeeded"
    arrived, started = moment(single["created_at"]), moment(done["started_at"])
    # The flood's jobs that started after the newcomer's arrived, in order: the newcomer is before the third.
    later = sorted(moment(j["started_at"]) for j in ended if j["started_at"] and moment(j["started_at"]) > arrived)
    ahead = [s for s in later if s < started]
    assert len(ahead) <= 2, f"{len(ahead)} flood jobs started between the newcomer's arrival and its start"
    assert len(later) > len(ahead)  # the flood was still going when the newcomer started
    cancelled = [j for j in ended if j["status"] == "cancelled" and j["started_at"] is None]
    account = flooder.get("/v1/account").get_json()
    assert account["balance"] == 1000 - len(ended) + len(cancelled)  # never-started jobs came back


def test_the_running_cap_keeps_a_users_jobs_one_at_a_time(app: Flask) -> None:
    single = new_user(app, "cap-one", max_running=1)
    jobs = [submit(single, txt2img(seed=20 + i, sim=QUICK)) for i in range(4)]
    assert [j["status"] for j in jobs][1:] == ["pending"] * 3
    done = [wait_for(single, j["id"], timeout=30) for j in jobs]
    assert [j["status"] for j in done] == ["succeeded"] * 4
    spans = sorted((moment(j["started_at"]), moment(j["finished_at"])) for j in done)
    for (_, ended), (began, _) in zip(spans, spans[1:]):
        assert began >= ended  # never two at once
    assert [j["id"] for j in sorted(done, key=lambda j: j["started_at"])] == [j["id"] for j in jobs]  # in order


def test_the_global_cap_bounds_admitted_jobs_of_all_users(app: Flask) -> None:
    users = [new_user(app, f"global-{n}") for n in range(3)]
    peak, stop = [0], threading.Event()

    def watch() -> None:
        with app.app_context():
            while not stop.is_set():
                admitted = db.session.scalar(select(func.count()).select_from(Job).where(
                    Job.status.in_(("queued", "running"))))
                peak[0] = max(peak[0], admitted or 0)
                db.session.rollback()
                time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        jobs = [(user, submit(user, txt2img(seed=40 + n, sim=QUICK))) for n in range(2) for user in users]
        done = [wait_for(user, job["id"], timeout=30) for user, job in jobs]
    finally:
        stop.set()
        watcher.join()
    assert [j["status"] for j in done] == ["succeeded"] * 6
    assert peak[0] == 2  # the cap was reached and never passed (who goes first: tests/unit/test_admission.py)


def test_the_waiting_cap_refuses_more_with_429_and_charges_nothing(app: Flask) -> None:
    busy = new_user(app, "cap-waiting", credits=10, max_running=1, max_waiting=2)
    slow = submit(busy, txt2img(steps=100, sim={"3": {"step_seconds": 0.05}}))
    wait_for(busy, slow["id"], {"running"})
    waiting = [submit(busy, txt2img(seed=60 + i)) for i in range(2)]
    refused = busy.post("/v1/jobs", json={"workflow": txt2img(seed=62)})
    batch = busy.post("/v1/batches", json={"template": "txt2img", "params": {"prompt": "x"},
                                          "variants": [{"steps": 2}]})
    assert refused.status_code == 429 and batch.status_code == 429
    assert refused.get_json()["message"].startswith("you have 2 jobs waiting and may have at most 2")
    assert refused.get_json()["errors"] == {"waiting": 2, "max_waiting": 2}
    account = busy.get("/v1/account").get_json()
    assert account["balance"] == 7 and account["usage"] == {"pending": 2, "queued": 0, "running": 1}
    assert account["limits"]["max_waiting"] == 2 and account["limits"]["sources"]["max_waiting"] == "user"
    finish(busy, [slow, *waiting])


def test_the_rate_limit_refuses_past_its_count_per_minute(app: Flask) -> None:
    hasty, other = new_user(app, "rate-hasty", rate_per_minute=3), new_user(app, "rate-other", rate_per_minute=3)
    accepted = [submit(hasty, txt2img(seed=80 + i)) for i in range(3)]
    refused = hasty.post("/v1/jobs", json={"workflow": txt2img(seed=83)})
    body = refused.get_json()
    assert refused.status_code == 429 and body["message"].startswith("you have used your 3 submissions per minute")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and body["errors"]["rate_per_minute"] == 3
    assert hasty.post("/v1/batches", json={"template": "txt2img", "params": {"prompt": "x"},
                                           "variants": [{"steps": 2}]}).status_code == 429
    unaffected = submit(other, txt2img(seed=84))  # counted per user
    assert hasty.get("/v1/jobs").status_code == 200  # reads are not submissions
    finish(hasty, accepted)
    finish(other, [unaffected])


def starts(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the jobs that started, in the order they started."""
    return sorted((j for j in jobs if j["started_at"]), key=lambda j: moment(j["started_at"]))


def test_a_backlog_gets_no_new_gpu_until_every_newcomer_started(app: Flask) -> None:
    hog = new_user(app, "share-hog")
    backlog = [submit(hog, txt2img(seed=100 + i, sim=QUICK)) for i in range(12)]
    wait_for(hog, backlog[0]["id"], {"running", "succeeded"}, timeout=30)  # hog holds the GPUs
    classmates = [new_user(app, f"share-kid-{n}") for n in range(6)]
    singles = [(kid, submit(kid, txt2img(seed=200 + n, sim=QUICK))) for n, kid in enumerate(classmates)]
    done = [wait_for(kid, job["id"], timeout=60) for kid, job in singles]
    ended = finish(hog, backlog)
    assert [j["status"] for j in done] == ["succeeded"] * 6
    first_arrival = min(moment(j["created_at"]) for j in done)
    last_start = max(moment(j["started_at"]) for j in done)
    # hog's jobs already admitted when the first classmate came (at most the 2 slots of the cap): the only ones
    # of hog's that may start, or still run, between the first classmate's arrival and the last one's start.
    during = [j for j in ended if j["started_at"] and first_arrival < moment(j["started_at"]) < last_start]
    running = [j for j in ended if j["started_at"] and moment(j["started_at"]) <= first_arrival
               and j["finished_at"] and moment(j["finished_at"]) > first_arrival]
    assert len(during) + len(running) <= 2, (len(during), len(running))
    # The k-th classmate waits about ceil(k/2) job times (two GPUs); loose bounds for a loaded machine.
    took = sorted(moment(j["finished_at"]) - moment(j["started_at"]) for j in done)[3].total_seconds()
    arrived = sorted(done, key=lambda j: moment(j["created_at"]))
    for k, job in enumerate(arrived, start=1):
        waited = (moment(job["started_at"]) - moment(job["created_at"])).total_seconds()
        assert waited <= (math.ceil(k / 2) + 1) * (took + 0.5) + 1.0, (k, waited, took)


def submit_students(app: Flask, prefix: str, together: bool) -> list[list[dict[str, Any]]]:
    """Ten students submit three jobs each, all at once or one student after another; return each one's jobs.

    A teacher's two slow jobs hold both slots of the cap while the students
    submit, so every student's jobs are pending when the first slot frees: the
    order they start in is fair share's alone, however slowly the machine takes
    the thirty submissions.
    """
    students = [new_user(app, f"{prefix}-{n}") for n in range(10)]
    jobs: list[list[dict[str, Any]]] = [[] for _ in students]
    teacher = new_user(app, f"{prefix}-teacher")
    demos = [submit(teacher, txt2img(seed=290 + i, sim={"3": {"step_seconds": 1.5}})) for i in range(2)]
    # Both at once, one per GPU: held behind the other, the second would go back to the queue for the idle GPU.
    wait_until(lambda: [teacher.get(f"/v1/jobs/{demo['id']}").get_json()["status"] for demo in demos]
               == ["running", "running"], timeout=30)

    def send(n: int) -> None:
        jobs[n] = [submit(students[n], txt2img(seed=300 + 3 * n + i, sim=QUICK)) for i in range(3)]

    if together:
        threads = [threading.Thread(target=send, args=(n,)) for n in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for n in range(10):
            send(n)
    held = [wait_for(teacher, demo["id"], {"running", *TERMINAL}, timeout=5)["status"] for demo in demos]
    assert held == ["running", "running"], "the teacher's jobs ended before the students had submitted"
    return [[wait_for(students[n], job["id"], timeout=90) for job in own] for n, own in enumerate(jobs)]


@pytest.mark.parametrize("together", [False, True], ids=["one-after-another", "all-at-once"])
def test_with_a_cap_of_two_every_first_job_starts_before_any_third(app: Flask, together: bool) -> None:
    done = submit_students(app, f"cap2-{'t' if together else 's'}", together)
    assert all(j["status"] == "succeeded" for own in done for j in own)
    firsts = max(min(moment(j["started_at"]) for j in own) for own in done)
    thirds = min(max(moment(j["started_at"]) for j in own) for own in done)
    assert firsts < thirds, "a student's third job started before another student's first"
