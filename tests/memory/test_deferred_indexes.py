"""A large ingest drops the links' target index and history's note index until its end, on a real
SQLite file (and never on PostgreSQL): what they serve keeps working meanwhile, they are built
again after the block (also when it raises), and a database opened after a crash gets them back."""
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from memory.database import open_engine, sqlite_url
from memory.deferred_indexes import BUILD_COST_RATIO, deferred_indexes, worth_deferring
from memory.errors import NotFound
from memory.forgetting import ForgettingConfig
from memory.store import NoteStore
from memory.types import Link, Note, Scope
from tests.helpers import T0, drop_pg_schema, index_names, pg_schema_url

DEFERRED = {"ix_links_target_id", "ix_history_note_id"}


def _note(i: int) -> Note:
    return Note(id=f"n{i:03d}", scope=Scope("u"), content=f"note number {i}", keywords=["k"], tags=["t"],
                context="c", metadata={}, created_at=T0, event_time=T0 - timedelta(days=i), last_recalled_at=None,
                recall_count=0, strength=10.0, importance=0.5)


def _indexes(store: NoteStore) -> set[str]:
    return index_names(store.engine, "links", "history")


@pytest.fixture()
def store(tmp_path):
    s = NoteStore(open_engine(sqlite_url(tmp_path / "s.db")), ForgettingConfig())
    yield s
    s.close()


def _fill(store: NoteStore, count: int) -> None:
    """``count`` notes, each linked to the one before it: n001 → n000, n002 → n001, ..."""
    notes = [_note(i) for i in range(count)]
    links = [Link(source_id=f"n{i:03d}", target_id=f"n{i - 1:03d}", kind="related", weight=0.9, created_at=T0)
             for i in range(1, count)]
    store.insert(notes, [None] * count, "m", "test", links=links)


def test_worth_deferring_when_one_build_costs_less_than_the_inserts():
    assert not worth_deferring(0, 0)
    assert worth_deferring(100, 0)  # an empty index: building it is all there is
    # the break-even: new entries = ratio * (existing + new)
    existing = 1_000_000
    even = BUILD_COST_RATIO * existing / (1 - BUILD_COST_RATIO)
    assert worth_deferring(even * 1.01, existing)
    assert not worth_deferring(even * 0.99, existing)


def test_indexes_are_away_inside_the_block_and_back_after(store):
    _fill(store, 10)
    assert DEFERRED <= _indexes(store)
    with deferred_indexes(store.engine, new_notes=10, min_notes=1) as dropped:
        assert set(dropped) == DEFERRED
        assert not DEFERRED & _indexes(store)
        # what they serve still answers, by scanning: incoming links, history, the delete cascade
        assert {(lk.source_id, lk.target_id) for lk in store.links("n005")} == {("n005", "n004"), ("n006", "n005")}
        assert [h.action for h in store.history("n003")] == ["add"]
        store.delete("n007", T0, "test")
        assert {(lk.source_id, lk.target_id) for lk in store.links("n006")} == {("n006", "n005")}
    assert DEFERRED <= _indexes(store)
    with store.engine.connect() as conn:  # the rebuilt index is the one queries use again
        plan = " ".join(r[-1] for r in conn.execute(text("EXPLAIN QUERY PLAN SELECT id FROM links WHERE target_id = 'n1'")))
    assert "ix_links_target_id" in plan
    with pytest.raises(NotFound):
        store.get("n007")


def test_searches_check_supersession_through_the_contradicts_index_after_a_rebuild(store):
    """The rebuilt target index comes last in the schema; the planner must still take the small
    partial index of contradicts links, not read every link of the candidates."""
    from memory.store import _SUPERSEDERS

    _fill(store, 10)
    sql = str(_SUPERSEDERS.params(ids=["n001", "n002"]).compile(store.engine, compile_kwargs={"literal_binds": True}))
    for _ in range(2):
        with deferred_indexes(store.engine, new_notes=10, min_notes=1) as dropped:
            assert "ix_links_target_id" in dropped
        with store.engine.connect() as conn:
            plan = " ".join(r[-1] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
        assert "ix_links_contradicted" in plan


def test_indexes_are_built_again_when_the_block_raises(store):
    _fill(store, 3)
    with pytest.raises(RuntimeError), deferred_indexes(store.engine, new_notes=10, min_notes=1):
        assert not DEFERRED & _indexes(store)
        raise RuntimeError("the ingest failed")
    assert DEFERRED <= _indexes(store)


def test_small_ingests_and_large_stores_keep_their_indexes(store):
    _fill(store, 200)  # 199 links, 200 history rows
    with deferred_indexes(store.engine, new_notes=1_000, min_notes=2_000) as dropped:
        assert dropped == [] and DEFERRED <= _indexes(store)
    with deferred_indexes(store.engine, new_notes=1, min_notes=1) as dropped:  # ~5 links against 199
        assert dropped == [] and DEFERRED <= _indexes(store)
    with deferred_indexes(store.engine, new_notes=1_000, min_notes=1) as dropped:  # ~5,000 against 199
        assert set(dropped) == DEFERRED


def test_opening_after_a_crash_builds_the_missing_indexes(tmp_path):
    path = tmp_path / "s.db"
    s = NoteStore(open_engine(sqlite_url(path)), ForgettingConfig())
    _fill(s, 5)
    with s.engine.begin() as conn:  # what a process killed inside the block leaves behind
        conn.execute(text("DROP INDEX ix_links_target_id"))
        conn.execute(text("DROP INDEX ix_history_note_id"))
    s.close()
    again = NoteStore(open_engine(sqlite_url(path)), ForgettingConfig())
    assert DEFERRED <= _indexes(again)
    assert {(lk.source_id, lk.target_id) for lk in again.links("n002")} == {("n002", "n001"), ("n003", "n002")}
    again.close()


def test_postgresql_keeps_its_indexes():
    schema = f"t_{uuid.uuid4().hex[:16]}"
    s = NoteStore(open_engine(pg_schema_url(schema, create=True)), ForgettingConfig())
    try:
        _fill(s, 3)
        with deferred_indexes(s.engine, new_notes=10_000, min_notes=1) as dropped:
            assert dropped == []
        assert DEFERRED <= index_names(s.engine, "links", "history")
    finally:
        s.close()
        drop_pg_schema(schema)
