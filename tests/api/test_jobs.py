"""Durable enrichment end to end: real SQLite file, real MiniLM, the rule extractor, job workers."""
import threading

import pytest

from api.engram import Engram
from api.worker import JobRunner
from memory.clock import FrozenClock
from memory.jobs import DONE, FAILED, QUEUED, RUNNING, JobSpec
from tests.helpers import T0


@pytest.fixture()
def manual(tmp_path, embedder, clock):
    """No worker thread: jobs run only through run_jobs / wait_for_jobs."""
    m = Engram(tmp_path / "engram.db", embedder=embedder, clock=clock, workers=0)
    yield m
    m.close()


def _facts(mem, entity="u1"):
    return [str(f) for f in mem.graph.facts(entity=entity, user_id="u1")]


def test_add_queues_a_graph_job_in_the_same_transaction(manual):
    (note,) = manual.add("I moved to Lisbon in May 2024.", user_id="u1", timestamp="2024-06-01T10:00:00Z")
    (job,) = manual.jobs(state=QUEUED)
    assert (job.kind, job.note_id, job.attempts) == ("graph", note.id, 0)
    assert manual.search("Lisbon", user_id="u1")[0].id == note.id  # searchable before any job ran
    assert _facts(manual) == []
    assert manual.wait_for_jobs(timeout=30)
    assert any("lives in Lisbon" in f for f in _facts(manual))
    (job,) = manual.jobs()
    assert job.state == DONE and job.result["facts"] == 1


def test_assistant_turns_are_not_graph_episodes(manual):
    manual.add([{"role": "user", "content": "I work at Airbus."},
                {"role": "assistant", "content": "I work at OpenAI, as it happens."}], user_id="u1", timestamp=T0)
    assert [j.kind for j in manual.jobs()] == ["graph"]
    manual.wait_for_jobs(timeout=30)
    assert any("Airbus" in f for f in _facts(manual)) and not any("OpenAI" in f for f in _facts(manual))


def test_moving_twice_links_the_notes_that_contradict(manual):
    paris, = manual.add("I moved to Paris in 2021.", user_id="u1", timestamp="2023-01-10T10:00:00Z")
    lisbon, = manual.add("We moved to Lisbon last June.", user_id="u1", timestamp="2024-02-10T10:00:00Z")
    rome, = manual.add("I moved to Rome two weeks ago.", user_id="u1", timestamp="2025-09-15T10:00:00Z")
    assert manual.wait_for_jobs(timeout=60)
    current = _facts(manual)
    assert len(current) == 1 and "Rome" in current[0] and "previously Lisbon" in current[0]
    contradicts = {(lk.source_id, lk.target_id) for n in (paris, lisbon, rome) for lk in manual.links(n.id)
                   if lk.kind == "contradicts"}
    assert contradicts == {(lisbon.id, paris.id), (rome.id, lisbon.id)}
    audit = [h for h in manual.history(rome.id) if h.action == "link"]
    assert audit[0].actor == "graph" and audit[0].new["link"]["target"] == lisbon.id
    assert audit[0].new["cause"] == "superseded_fact"


def test_delete_withdraws_the_notes_facts(manual):
    manual.add("I moved to Paris in 2021.", user_id="u1", timestamp="2023-01-10T10:00:00Z")
    lisbon, = manual.add("We moved to Lisbon last June.", user_id="u1", timestamp="2024-02-10T10:00:00Z")
    manual.wait_for_jobs(timeout=60)
    manual.delete(lisbon.id)
    assert [j.kind for j in manual.jobs(state=QUEUED)] == ["retract"]
    manual.wait_for_jobs(timeout=30)
    current = _facts(manual)
    assert len(current) == 1 and "Paris" in current[0]
    assert not any("Lisbon" in f and "until" not in f for f in _facts(manual))


def test_editing_a_note_replaces_what_it_told_the_graph(manual):
    note, = manual.add("I work at Airbus.", user_id="u1", timestamp=T0)
    manual.wait_for_jobs(timeout=30)
    manual.update(note.id, content="I work at Siemens.")
    manual.wait_for_jobs(timeout=30)
    current = _facts(manual)
    assert any("Siemens" in f for f in current) and not any("Airbus" in f for f in current)
    assert manual.jobs()[0].result["withdrawn"] >= 1


def test_a_job_without_a_handler_is_retried_with_backoff_then_failed(manual, clock):
    manual.job_store.enqueue([JobSpec("nonsense")], clock())
    for attempt in range(1, 6):
        assert manual.run_jobs() == 1
        (job,) = manual.jobs()
        assert job.attempts == attempt and "no handler" in job.last_error
        assert manual.run_jobs() == 0  # waiting out its backoff
        if attempt < 5:
            assert job.state == QUEUED and job.next_run_at > clock()
            clock.set(job.next_run_at)
    assert manual.jobs(state=FAILED)[0].id == job.id
    assert manual.wait_for_jobs(timeout=1)  # a failed job is finished: it does not block waiting
    assert manual.retry_job(job.id).state == QUEUED


def test_a_raising_handler_records_its_error_and_the_next_attempt_succeeds(manual, clock):
    calls = []

    def flaky(job):
        calls.append(job.attempts)
        if len(calls) == 1:
            raise RuntimeError("model server went away")
        return {"ok": True}

    runner = JobRunner(manual.job_store, {"flaky": flaky}, clock)
    manual.job_store.enqueue([JobSpec("flaky")], clock())
    assert runner.run_one()
    (job,) = manual.jobs()
    assert job.state == QUEUED and job.last_error.startswith("RuntimeError: model server went away")
    assert not runner.run_one()  # backoff: not due yet
    clock.advance(seconds=2)
    assert runner.run_one() and manual.jobs()[0].state == DONE and calls == [1, 2]


def test_a_job_claimed_by_a_crashed_worker_resumes_after_its_lease(tmp_path, embedder):
    clock = FrozenClock(T0)
    path = tmp_path / "engram.db"
    mem = Engram(path, embedder=embedder, clock=clock, workers=0)
    mem.add("I work at Airbus.", user_id="u1", timestamp=T0)
    (claimed,) = mem.job_store.claim(clock())  # a worker took it ... and the process dies
    mem.close()

    mem = Engram(path, embedder=embedder, clock=clock, workers=0)
    assert not mem.wait_for_jobs(timeout=0.3)  # still leased to the dead worker
    assert mem.jobs()[0].state == RUNNING
    mem.close()

    clock.advance(seconds=mem.config.memory.jobs.lease_s + 1)
    mem = Engram(path, embedder=embedder, clock=clock, workers=0)
    assert mem.wait_for_jobs(timeout=30)
    (job,) = mem.jobs()
    assert job.id == claimed.id and job.state == DONE and job.attempts == 2
    assert any("Airbus" in f for f in _facts(mem))
    mem.close()


def test_worker_threads_run_jobs_and_close_stops_them(tmp_path, embedder):
    before = set(threading.enumerate())
    mem = Engram(tmp_path / "engram.db", embedder=embedder, workers=2)
    workers = [t for t in set(threading.enumerate()) - before if t.name.startswith("engram-jobs")]
    assert len(workers) == 2
    mem.add("My sister Emma lives in Bergen.", user_id="u1")
    assert mem.wait_for_jobs(timeout=60)
    assert any("Bergen" in f for f in _facts(mem, "Emma"))
    mem.close()
    assert not any(t.is_alive() for t in workers)


def test_stopping_releases_claimed_jobs_that_did_not_start(manual, clock):
    seen = []
    manual.job_store.enqueue([JobSpec("slow"), JobSpec("slow"), JobSpec("slow")], clock())
    runner = JobRunner(manual.job_store, {"slow": lambda job: seen.append(job.id) or {}}, clock)
    assert runner.run_batch(8, stopping=lambda: len(seen) >= 1) == 1
    states = sorted((j.state, j.attempts) for j in manual.jobs())
    assert states == [(DONE, 1), (QUEUED, 0), (QUEUED, 0)]


def test_queued_jobs_survive_a_restart(tmp_path, embedder, clock):
    path = tmp_path / "engram.db"
    mem = Engram(path, embedder=embedder, clock=clock, workers=0)
    mem.add("I work at Airbus.", user_id="u1", timestamp=T0)
    mem.close()
    mem = Engram(path, embedder=embedder, clock=clock, workers=1)
    assert mem.wait_for_jobs(timeout=30) and mem.jobs()[0].state == DONE
    mem.close()


def test_bad_job_arguments_are_typed_errors(manual, tmp_path):
    from memory.errors import InvalidInput, NotFound

    with pytest.raises(InvalidInput):
        manual.jobs(limit=0)
    with pytest.raises(NotFound):
        manual.retry_job(12345)
    with pytest.raises(InvalidInput):
        Engram(tmp_path / "x.db", workers=-1)


def test_an_edit_that_no_longer_contradicts_drops_the_stale_link(manual):
    paris, = manual.add("I moved to Paris in 2021.", user_id="u1", timestamp="2023-01-10T10:00:00Z")
    lisbon, = manual.add("We moved to Lisbon last June.", user_id="u1", timestamp="2024-02-10T10:00:00Z")
    manual.wait_for_jobs(timeout=60)
    assert [lk.target_id for lk in manual.links(lisbon.id) if lk.kind == "contradicts"] == [paris.id]
    manual.update(lisbon.id, content="We visited Lisbon last June.")
    manual.wait_for_jobs(timeout=60)
    assert not [lk for lk in manual.links(lisbon.id) if lk.kind == "contradicts"]
    assert [h.action for h in manual.history(lisbon.id)][-1] == "unlink"
    current = _facts(manual)
    assert len(current) == 1 and "Paris" in current[0]
