"""Several Engram instances on one database: each index follows the others' writes through the
change feed (LISTEN/NOTIFY on PostgreSQL, polling on SQLite), without skipping late commits."""
import threading
import time

import numpy as np
import pytest

from api.engram import Engram
from api.index_sync import apply_changes
from memory.database import open_engine
from memory.forgetting import ForgettingConfig
from memory.store import NoteStore
from memory.types import Note, Scope
from retrieval.hybrid import HybridIndex
from tests.helpers import POSTGRES_URL, T0, drop_pg_schema

DEADLINE = 15.0  # seconds; the bench measures the real delay, this only bounds a hang


def _until(predicate, timeout=DEADLINE):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _ids(mem, query, **scope):
    return [h.id for h in mem.search(query, top_k=5, **scope)]


@pytest.fixture()
def pair(database_url, tmp_path, embedder, clock):
    """A writer and a following reader, each with its own engine, index and origin."""
    writer = Engram(database_url=database_url, embedder=embedder, clock=clock, index_dir=tmp_path / "w")
    reader = Engram(database_url=database_url, embedder=embedder, clock=clock, index_dir=tmp_path / "r",
                    follow=True)
    yield writer, reader
    reader.close()
    writer.close()


def test_writes_through_one_instance_reach_the_other(pair):
    writer, reader = pair
    (note,) = writer.add("Ann keeps bees on her allotment in Leeds", user_id="ann")
    assert _until(lambda: reader.index.contains(note.id))
    assert _ids(reader, "beekeeping allotment", user_id="ann")[0] == note.id

    writer.update(note.id, content="Ann gave up the bees and now grows tomatoes")
    assert _until(lambda: _ids(reader, "tomatoes", user_id="ann")[:1] == [note.id])

    writer.delete(note.id)
    assert _until(lambda: not reader.index.contains(note.id))
    assert note.id not in _ids(reader, "tomatoes", user_id="ann")


def test_archiving_elsewhere_leaves_default_search(pair):
    writer, reader = pair
    (note,) = writer.add("Ben's passport number ends in 42", user_id="ben", timestamp="2020-01-01")
    assert _until(lambda: reader.index.contains(note.id))
    assert writer.consolidate(user_id="ben", now="2030-01-01") == [note.id]
    assert _until(lambda: note.id not in _ids(reader, "passport", user_id="ben"))
    assert note.id in _ids(reader, "passport", user_id="ben", include_archived=True)


def test_own_writes_are_not_indexed_twice(pair, database_url):
    writer, reader = pair
    writer_follows = Engram(database_url=database_url, embedder=writer.embedder, follow=True)
    try:
        (note,) = writer_follows.add("Cleo plays the cello on Sundays", user_id="cleo")
        assert _until(lambda: reader.index.contains(note.id))
        assert writer_follows.apply_changes() == []  # its own change only moves the position
        assert writer_follows.index.catalog.num_rows == 1
        assert writer_follows.index.applied_seq == writer.store.last_change()
    finally:
        writer_follows.close()


def _vec(seed):
    v = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return (v / np.linalg.norm(v)).tobytes()


def _note(note_id):
    return Note(note_id, Scope("u"), f"content of {note_id}", [], [], "", {}, T0, T0, None, 0, 10.0, 0.5)


class _SlowStore(NoteStore):
    """The real store, whose transaction stays open after it wrote its change row until released."""

    def __init__(self, *args, entered, release, **kw):
        super().__init__(*args, **kw)
        self.entered, self.release = entered, release

    def _log_changes(self, s, changes, now):
        super()._log_changes(s, changes, now)
        self.entered.set()
        assert self.release.wait(DEADLINE)


def test_a_change_that_commits_late_is_not_skipped(database_url):
    """Writer A takes seq n and commits late; writer B starts after A wrote its change row. A reader
    applying the feed while A is open must still get A's note once A commits."""
    entered, release = threading.Event(), threading.Event()
    slow = _SlowStore(open_engine(database_url), ForgettingConfig(), entered=entered, release=release)
    fast = NoteStore(open_engine(database_url), ForgettingConfig())
    reader = NoteStore(open_engine(database_url), ForgettingConfig())
    index = HybridIndex(384)
    a = threading.Thread(target=slow.insert, args=([_note("late")], [_vec(1)], "m", "a"))
    b = threading.Thread(target=fast.insert, args=([_note("early")], [_vec(2)], "m", "b"))
    try:
        a.start()
        assert entered.wait(DEADLINE)
        b.start()
        b.join(timeout=1.0)  # B commits now if nothing orders it after A
        apply_changes(index, reader, None)
        release.set()
        a.join(DEADLINE)
        b.join(DEADLINE)
        apply_changes(index, reader, None)
        assert index.contains("late") and index.contains("early")
        assert reader.changes_after(0)[0].note_id == "late"  # seq order is commit order
    finally:
        release.set()
        for s in (slow, fast, reader):
            s.close()


def test_follower_reconnects_after_its_connection_drops(tmp_path, embedder, clock):
    schema = "t_reconnect_feed"
    drop_pg_schema(schema)
    try:
        writer = Engram(database_url=POSTGRES_URL, db_schema=schema, embedder=embedder, clock=clock)
        reader = Engram(database_url=POSTGRES_URL, db_schema=schema, embedder=embedder, clock=clock, follow=True,
                        follow_interval=30.0)  # only a notification or the reconnect can wake it in time
        listener = reader.follower.signal
        assert _until(lambda: listener.backend_pid() is not None)
        with writer.store._engine.connect() as conn:  # noqa: SLF001 - kill the LISTEN backend from outside
            from sqlalchemy import text

            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": listener.backend_pid()})
        (note,) = writer.add("Dora's flight to Oslo leaves at noon", user_id="dora")
        assert _until(lambda: reader.index.contains(note.id))
        assert listener.reconnects >= 2
        (again,) = writer.add("Dora booked a hotel near the harbour", user_id="dora")
        assert _until(lambda: reader.index.contains(again.id), timeout=5.0)  # LISTENing again
        reader.close()
        writer.close()
    finally:
        drop_pg_schema(schema)


def test_tenants_in_their_own_schemas_do_not_see_each_other(embedder, clock):
    schemas = ["engram_t_feed_a", "engram_t_feed_b"]
    for schema in schemas:
        drop_pg_schema(schema)
    try:
        a = Engram(database_url=POSTGRES_URL, db_schema=schemas[0], embedder=embedder, clock=clock, follow=True)
        b = Engram(database_url=POSTGRES_URL, db_schema=schemas[1], embedder=embedder, clock=clock, follow=True)
        a2 = Engram(database_url=POSTGRES_URL, db_schema=schemas[0], embedder=embedder, clock=clock)
        (note,) = a2.add("Eve's locker code is 1234", user_id="eve")
        assert _until(lambda: a.index.contains(note.id))
        time.sleep(0.5)
        assert not b.index.contains(note.id) and b.search("locker code", user_id="eve") == []
        assert b.store.stats()["notes"] == 0
        for m in (a, b, a2):
            m.close()
    finally:
        for schema in schemas:
            drop_pg_schema(schema)
