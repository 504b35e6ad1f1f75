"""The durable job queue on a real SQLite file and a real PostgreSQL schema: same-transaction
enqueue, leases, backoff, failure, and each job claimed by exactly one of several processes."""
import multiprocessing
from datetime import timedelta

import pytest

from memory.config import JobConfig
from memory.database import open_engine
from memory.errors import InvalidInput, NotFound, StorageError
from memory.forgetting import ForgettingConfig
from memory.jobs import DONE, FAILED, QUEUED, RUNNING, JobSpec, JobStore, backoff
from memory.store import NoteStore
from memory.types import Note, Scope
from tests.helpers import T0

CFG = JobConfig(max_attempts=3, backoff_s=2.0, max_backoff_s=5.0, lease_s=60.0)


def _note(i: int) -> Note:
    return Note(id=f"n{i}", scope=Scope("u"), content=f"note {i}", keywords=[], tags=[], context="", metadata={},
                created_at=T0, event_time=T0, last_recalled_at=None, recall_count=0, strength=10.0, importance=0.5)


@pytest.fixture()
def stores(database_url):
    engine = open_engine(database_url, durable=False)
    yield NoteStore(engine, ForgettingConfig(), CFG), JobStore(engine, CFG)
    engine.dispose()


def test_jobs_are_enqueued_in_the_note_transaction(stores):
    notes, jobs = stores
    notes.insert([_note(1)], [None], "m", "a", jobs=[JobSpec("graph", "n1"), JobSpec("enrich", "n1", {"x": 1})])
    queued = jobs.list(QUEUED)
    assert {(j.kind, j.note_id) for j in queued} == {("graph", "n1"), ("enrich", "n1")}
    assert all(j.attempts == 0 and j.next_run_at == T0 and j.max_attempts == 3 for j in queued)
    with pytest.raises(StorageError):  # same note id again: the whole transaction rolls back, jobs too
        notes.insert([_note(1)], [None], "m", "a", jobs=[JobSpec("graph", "n1")])
    assert jobs.counts() == {QUEUED: 2, RUNNING: 0, DONE: 0, FAILED: 0}


def test_claim_leases_a_job_once_and_done_records_the_result(stores):
    _, jobs = stores
    jobs.enqueue([JobSpec("graph", "n1"), JobSpec("graph", "n2")], T0)
    (first,) = jobs.claim(T0, limit=1)
    assert first.note_id == "n1" and first.state == RUNNING and first.attempts == 1
    assert first.lease_until == T0 + timedelta(seconds=60)
    (second,) = jobs.claim(T0, limit=5)  # the running one is leased: only n2 is left
    assert second.note_id == "n2"
    assert jobs.claim(T0) == []
    assert jobs.complete(first, T0, {"facts": 1})
    assert jobs.get(first.id).state == DONE and jobs.get(first.id).result == {"facts": 1}


def test_an_expired_lease_makes_the_job_claimable_and_fences_the_old_holder(stores):
    _, jobs = stores
    jobs.enqueue([JobSpec("graph", "n1")], T0)
    (lost,) = jobs.claim(T0)
    assert jobs.claim(T0 + timedelta(seconds=59)) == []
    (again,) = jobs.claim(T0 + timedelta(seconds=61))
    assert again.id == lost.id and again.attempts == 2
    assert not jobs.complete(lost, T0 + timedelta(seconds=62))  # the crashed holder lost its claim
    assert jobs.fail(lost, "late", T0) is None
    assert jobs.complete(again, T0 + timedelta(seconds=62))


def test_failures_back_off_exponentially_then_fail_visibly(stores):
    _, jobs = stores
    jobs.enqueue([JobSpec("graph", "n1")], T0)
    now = T0
    for attempt, delay in ((1, 2.0), (2, 4.0)):
        (job,) = jobs.claim(now)
        assert job.attempts == attempt
        assert jobs.fail(job, f"boom {attempt}", now) == QUEUED
        assert jobs.get(job.id).next_run_at == now + timedelta(seconds=delay)
        assert jobs.claim(now + timedelta(seconds=delay - 0.5)) == []
        now += timedelta(seconds=delay)
    (job,) = jobs.claim(now)
    assert jobs.fail(job, "boom 3", now) == FAILED
    failed = jobs.list(FAILED)
    assert [j.last_error for j in failed] == ["boom 3"] and failed[0].attempts == 3
    assert jobs.claim(now + timedelta(days=1)) == []
    retried = jobs.retry(job.id, now)
    assert retried.state == QUEUED and retried.attempts == 0
    assert jobs.claim(now)[0].id == job.id


def test_backoff_is_capped():
    assert [backoff(n, CFG).total_seconds() for n in (1, 2, 3, 4)] == [2.0, 4.0, 5.0, 5.0]


def test_a_lost_last_attempt_ends_failed_instead_of_running_forever(stores):
    _, jobs = stores
    jobs.enqueue([JobSpec("graph", "n1")], T0)
    now = T0
    for _ in range(3):
        jobs.claim(now)  # claimed, then the worker "dies": the lease runs out
        now += timedelta(seconds=61)
    assert jobs.claim(now) == []
    (job,) = jobs.list(FAILED)
    assert job.attempts == 3 and "lease expired" in job.last_error


def test_bad_requests_are_typed_errors(stores):
    _, jobs = stores
    with pytest.raises(InvalidInput):
        jobs.list("sleeping")
    with pytest.raises(NotFound):
        jobs.retry(42, T0)
    jobs.enqueue([JobSpec("graph", "n1")], T0)
    with pytest.raises(InvalidInput):
        jobs.retry(jobs.list()[0].id, T0)  # only failed jobs are retried


def test_a_released_job_is_queued_again_without_losing_an_attempt(stores):
    _, jobs = stores
    jobs.enqueue([JobSpec("graph", "n1")], T0)
    (job,) = jobs.claim(T0)
    assert jobs.release(job, T0)
    again = jobs.get(job.id)
    assert (again.state, again.attempts, again.lease_until) == (QUEUED, 0, None)
    assert not jobs.release(job, T0)  # no longer held
    assert jobs.claim(T0)[0].attempts == 1


def _claim_all(url: str, out: "multiprocessing.Queue[list[int]]", start: "multiprocessing.Event") -> None:
    """One worker process: its own engine and job store, claiming small batches until none is left."""
    engine = open_engine(url, durable=False)
    jobs = JobStore(engine, CFG)
    start.wait(30)
    mine: list[int] = []
    while batch := jobs.claim(T0, limit=2):
        for job in batch:
            assert jobs.complete(job, T0)
            mine.append(job.id)
    engine.dispose()
    out.put(mine)


def test_several_processes_claim_each_job_exactly_once(stores, database_url):
    """Four processes race over 200 jobs (row locks with SKIP LOCKED on PostgreSQL, the single
    writer on SQLite): every job is done, by exactly one of them."""
    _, jobs = stores
    jobs.enqueue([JobSpec("graph", f"n{i}") for i in range(200)], T0)
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no engine shared through fork
    out, start = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_claim_all, args=(database_url, out, start)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    claimed = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    every = [i for mine in claimed for i in mine]
    assert len(every) == len(set(every)) == 200
    assert jobs.counts() == {QUEUED: 0, RUNNING: 0, DONE: 200, FAILED: 0}
    assert sum(1 for mine in claimed if mine) >= 2  # they really competed
