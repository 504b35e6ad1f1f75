"""The SQL store on a real SQLite file and a real PostgreSQL schema: transactions, history, recall,
archive, change feed."""
import sqlite3
from datetime import timedelta

import pytest

from memory.config import LinkingConfig
from memory.database import open_engine, sqlite_url
from memory.errors import NotFound
from memory.forgetting import ForgettingConfig
from memory.linking import RELATED, LinkPlan
from memory.store import NoteStore
from memory.types import Link, Note, Scope
from tests.helpers import T0


def _note(i: int, scope: Scope, **kw) -> Note:
    base = dict(id=f"n{i}", scope=scope, content=f"note number {i}", keywords=["k"], tags=["t"], context="c",
                metadata={"i": i}, created_at=T0, event_time=T0 - timedelta(days=i), last_recalled_at=None,
                recall_count=0, strength=10.0, importance=0.5)
    base.update(kw)
    return Note(**base)


@pytest.fixture()
def store(database_url):
    s = NoteStore(open_engine(database_url), ForgettingConfig())
    yield s
    s.close()


def test_sqlite_file_runs_in_wal_mode(tmp_path):
    s = NoteStore(open_engine(sqlite_url(tmp_path / "s.db")), ForgettingConfig())
    s.insert([_note(1, Scope("u"))], [None], "m", "test")
    with s._engine.connect() as conn:  # noqa: SLF001 - checking the pragma on the real file
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "s.db").exists()
    s.close()


class _LockedCursor:
    """Answers the WAL pragma with the given errors first, as SQLite does to a process that opens a
    new file while another is switching it to WAL (no busy handler is called for that)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors, self.calls = errors, 0

    def execute(self, sql: str) -> None:
        self.calls += 1
        if self.errors:
            raise sqlite3.OperationalError(self.errors.pop(0))


def test_switching_to_wal_retries_while_another_opener_holds_the_file():
    from memory.database import _enter_wal

    cursor = _LockedCursor(["database is locked", "database is locked"])
    _enter_wal(cursor)  # type: ignore[arg-type]
    assert cursor.calls == 3
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _enter_wal(_LockedCursor(["disk I/O error"]))  # type: ignore[arg-type]


def test_the_supersession_read_uses_the_partial_index_of_contradicts_links(tmp_path):
    """A search asks for the contradicts links of its candidates; through the plain target_id
    index that read every link of each candidate. The partial index needs the kind as a literal."""
    from memory.linking import CONTRADICTS
    from memory.schema import CONTRADICTS_ONLY
    from memory.store import _SUPERSEDERS

    assert CONTRADICTS_ONLY == f"kind = '{CONTRADICTS}'"
    s = NoteStore(open_engine(sqlite_url(tmp_path / "s.db")), ForgettingConfig())
    sql = _SUPERSEDERS.params(ids=["a", "b"]).compile(
        dialect=s._engine.dialect, compile_kwargs={"render_postcompile": True, "literal_binds": True})  # noqa: SLF001
    with s._engine.connect() as conn:  # noqa: SLF001
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    assert "ix_links_contradicted" in plan, plan
    s.close()


def test_links_by_source_use_the_unique_index_and_there_is_no_second_one(tmp_path):
    """uq_link's index starts with source_id: a note's links and the cascade on delete find their
    rows through it, so a separate source_id index (dropped in m0006) only cost writes."""
    s = NoteStore(open_engine(sqlite_url(tmp_path / "s.db")), ForgettingConfig())
    with s._engine.connect() as conn:  # noqa: SLF001
        names = {row[0] for row in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index' "
                                                           "AND tbl_name = 'links'")}
        plans = [" ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
                 for sql in ("SELECT * FROM links WHERE source_id = 'a' OR target_id = 'a'",
                             "SELECT * FROM links WHERE source_id = 'a' AND kind = 'related'")]
    assert "ix_links_source_id" not in names
    assert all("sqlite_autoindex_links_1 (source_id=?)" in plan for plan in plans), plans
    s.close()


def test_recall_bookkeeping_commits_without_fsync_and_survives_reopening(tmp_path):
    """Notes commit with synchronous=FULL (fsync); recalls go through a second engine with NORMAL
    (WAL: safe against a process crash), and what they wrote is there for the next process."""
    url = sqlite_url(tmp_path / "s.db")
    s = NoteStore(open_engine(url), ForgettingConfig())
    s.insert([_note(1, Scope("u"))], [None], "m", "test")
    with s._engine.connect() as full, s._bookkeeping.connect() as relaxed:  # noqa: SLF001 - the pragmas
        assert full.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert relaxed.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    s.recall(["n1"], T0 + timedelta(days=3), "search", "q")
    s.close()
    again = NoteStore(open_engine(url), ForgettingConfig())
    note = again.get("n1")
    assert note.recall_count == 1 and note.last_recalled_at == T0 + timedelta(days=3) and note.strength > 10.0
    again.close()


def test_insert_get_and_history(store):
    store.insert([_note(1, Scope("u", session_id="s"))], [b"\x00" * 8], "m", "alice")
    note = store.get("n1")
    assert note.content == "note number 1" and note.scope == Scope("u", session_id="s")
    assert note.event_time == T0 - timedelta(days=1) and note.event_time.tzinfo is not None
    (entry,) = store.history("n1")
    assert entry.action == "add" and entry.actor == "alice" and entry.new["content"] == "note number 1"


def test_update_records_old_and_new(store):
    store.insert([_note(1, Scope("u"))], [None], "m", "a")
    store.update("n1", {"content": "changed"}, T0, "bob")
    hist = store.history("n1")
    assert [h.action for h in hist] == ["add", "update"]
    assert hist[1].old["content"] == "note number 1" and hist[1].new["content"] == "changed"
    assert hist[1].actor == "bob"


def test_delete_keeps_history_and_removes_links(store):
    store.insert([_note(1, Scope("u")), _note(2, Scope("u"))], [None, None], "m", "a")
    store.add_links([Link("n1", "n2", "related", 0.9, T0)])
    store.delete("n2", T0, "a")
    with pytest.raises(NotFound):
        store.get("n2")
    assert store.links("n1") == []
    assert store.history("n2")[-1].action == "delete"
    assert store.history("n2")[-1].old["content"] == "note number 2"


def test_links_are_deduplicated_and_bidirectional_on_read(store):
    store.insert([_note(1, Scope("u")), _note(2, Scope("u"))], [None, None], "m", "a")
    link = Link("n1", "n2", "related", 0.8, T0)
    assert len(store.add_links([link, link])) == 1
    assert store.add_links([link]) == []
    assert store.links("n2")[0].source_id == "n1"


def test_recall_reinforces_and_logs_in_one_transaction(store):
    store.insert([_note(1, Scope("u"), event_time=T0)], [None], "m", "a")
    now = T0 + timedelta(days=10)
    rec = store.recall(["n1"], now, "search", "q")["n1"]
    note = store.get("n1")
    assert rec.retention_before == pytest.approx(2.718281828 ** -1, rel=1e-6)
    assert note.strength == pytest.approx(rec.strength_after) and note.strength > 10.0
    assert note.recall_count == 1 and note.last_recalled_at == now
    assert store.stats()["accesses"] == 1
    store.recall(["n1"], T0, "get", None)  # asking "as of" an earlier time
    assert store.get("n1").last_recalled_at == now


def test_archive_restore_and_faded(store):
    store.insert([_note(1, Scope("u"), event_time=T0), _note(2, Scope("u"), event_time=T0 + timedelta(days=60))],
                 [None, None], "m", "a")
    faded = store.faded(Scope("u"), T0 + timedelta(days=61), threshold=0.05)
    assert faded == ["n1"]
    assert store.set_archived(faded, True, T0, "consolidate") == ["n1"]
    assert store.set_archived(faded, True, T0, "consolidate") == []
    assert store.get("n1").archived
    assert [n.id for n in store.list_notes(Scope("u"), False, 10, 0)] == ["n2"]
    assert store.set_archived(["n1"], False, T0, "u") == ["n1"]
    assert [h.action for h in store.history("n1")] == ["add", "archive", "restore"]


def test_change_feed_is_monotonic(store):
    assert store.last_change() == 0
    store.insert([_note(1, Scope("u")), _note(2, Scope("u"))], [None, None], "m", "a")
    seq = store.last_change()
    store.update("n1", {"content": "x"}, T0, "a")
    store.delete("n2", T0, "a")
    assert store.last_change() == seq + 2
    assert store.changed_since(seq) == ["n1", "n2"]
    assert store.changed_since(0) == ["n1", "n2"]


def test_failed_batch_writes_nothing(store):
    store.insert([_note(1, Scope("u"))], [None], "m", "a")
    from memory.errors import StorageError

    with pytest.raises(StorageError):
        store.insert([_note(2, Scope("u")), _note(1, Scope("u"))], [None, None], "m", "a")  # duplicate id
    assert [n.id for n in store.list_notes(Scope("u"), True, 10, 0)] == ["n1"]
    assert store.last_change() == 1


def test_unknown_ids_raise_not_found(store):
    for call in (lambda: store.get("nope"), lambda: store.links("nope"), lambda: store.history("nope"),
                 lambda: store.update("nope", {"content": "x"}, T0, "a"), lambda: store.delete("nope", T0, "a")):
        with pytest.raises(NotFound):
            call()


def test_scopes_are_isolated(store):
    store.insert([_note(1, Scope("u1")), _note(2, Scope("u2")), _note(3, Scope("u1", agent_id="bot"))],
                 [None] * 3, "m", "a")
    assert {n.id for n in store.list_notes(Scope("u1"), False, 10, 0)} == {"n1", "n3"}
    assert {n.id for n in store.list_notes(Scope(agent_id="bot"), False, 10, 0)} == {"n3"}
    assert {n.id for n in store.list_notes(Scope("u2"), False, 10, 0)} == {"n2"}


def test_a_recall_does_not_wait_for_a_writer_linking_to_the_note():
    """PostgreSQL: inserting a link checks its foreign keys with FOR KEY SHARE on the notes it
    names. A recall locks the notes it reinforces with FOR NO KEY UPDATE (what an UPDATE of
    non-key columns takes), which that share lock does not block. With FOR UPDATE it waited, and a
    recall and an add linking to the same notes deadlocked (CI: bench/load.py, two servers)."""
    import threading
    import uuid

    from sqlalchemy import text

    from tests.helpers import drop_pg_schema, pg_schema_url

    schema = f"t_{uuid.uuid4().hex[:16]}"
    store = NoteStore(open_engine(pg_schema_url(schema, create=True)), ForgettingConfig())
    try:
        store.insert([_note(1, Scope("u")), _note(2, Scope("u"))], [None, None], "m", "a")
        with store.engine.connect() as writer:
            tx = writer.begin()
            writer.execute(text("INSERT INTO links (source_id, target_id, kind, weight, created_at) "
                                "VALUES ('n2', 'n1', 'related', 1.0, now())"))
            done = threading.Event()
            recaller = threading.Thread(target=lambda: (store.recall(["n1"], T0, "search", "q"), done.set()))
            recaller.start()
            finished = done.wait(10)
            tx.rollback()
        recaller.join()
        assert finished, "the recall waited for the open link insert"
        assert store.get("n1").recall_count == 1
    finally:
        store.close()
        drop_pg_schema(schema)


def test_evolutions_are_decided_from_the_neighbours_as_the_insert_reads_them(store):
    """Another writer changed a close neighbour after the batch's vector search and before its
    insert: the evolution builds on that change, and history records it as the old value."""
    store.insert([_note(1, Scope("u"), content="Oat milk latte at the harbour cafe", keywords=["latte"], tags=["food"])],
                 [None], "m", "a")
    new = _note(2, Scope("u"), content="oat milk, harbour", keywords=["oat milk", "harbour"], tags=["drinks"])
    plan = LinkPlan([new], [[("n1", 0.9)]], LinkingConfig())
    store.update("n1", {"keywords": ["latte", "cafe"], "tags": ["food", "places"]}, T0, "other")
    changes = store.insert([new], [None], "m", "a", plan=plan).evolutions
    expected_kw, expected_tags = ["latte", "cafe", "oat milk", "harbour"], ["food", "places", "drinks"]
    assert [(c.note_id, c.old_keywords, c.keywords) for c in changes] == [("n1", ["latte", "cafe"], expected_kw)]
    stored = store.get("n1")
    assert (stored.keywords, stored.tags) == (expected_kw, expected_tags)
    evolve = [h for h in store.history("n1") if h.action == "evolve"]
    assert [(h.old, h.new) for h in evolve] == [({"keywords": ["latte", "cafe"], "tags": ["food", "places"]},
                                                 {"keywords": expected_kw, "tags": expected_tags, "cause": "n2"})]


def test_an_insert_evolving_a_note_does_not_wait_for_a_writer_linking_to_it():
    """PostgreSQL: the insert reads the neighbours it evolves with FOR NO KEY UPDATE, which the
    FOR KEY SHARE lock of another transaction's link insert (its foreign key check) does not block.
    With FOR UPDATE it waited, and two batches linking to and evolving the same notes could deadlock."""
    import threading
    import uuid

    from sqlalchemy import text

    from tests.helpers import drop_pg_schema, pg_schema_url

    schema = f"t_{uuid.uuid4().hex[:16]}"
    store = NoteStore(open_engine(pg_schema_url(schema, create=True)), ForgettingConfig())
    try:
        store.insert([_note(1, Scope("u"), content="the harbour cafe", keywords=[], tags=[]), _note(2, Scope("u"))],
                     [None, None], "m", "a")
        new = _note(3, Scope("u"), content="harbour", keywords=["harbour"], tags=["places"])
        plan = LinkPlan([new], [[("n1", 0.9)]], LinkingConfig())
        with store.engine.connect() as writer:
            tx = writer.begin()
            writer.execute(text("INSERT INTO links (source_id, target_id, kind, weight, created_at) "
                                "VALUES ('n2', 'n1', 'related', 1.0, now())"))
            done = threading.Event()
            inserter = threading.Thread(target=lambda: (store.insert([new], [None], "m", "a", plan=plan), done.set()))
            inserter.start()
            finished = done.wait(10)
            tx.rollback()
        inserter.join()
        assert finished, "the insert waited for the open link insert"
        assert store.get("n1").keywords == ["harbour"]
    finally:
        store.close()
        drop_pg_schema(schema)


def test_links_to_a_note_deleted_since_the_search_are_dropped_and_the_rest_stored(store):
    """Another process deleted a note that this batch's vector search found (its index has not
    seen the delete yet): the link to it is dropped instead of failing the foreign key and the add."""
    store.insert([_note(1, Scope("u")), _note(2, Scope("u"))], [None, None], "m", "a")
    new = _note(3, Scope("u"))
    new.links = [Link("n3", "n1", RELATED, 0.5, T0), Link("n3", "n2", RELATED, 0.5, T0)]
    plan = LinkPlan([new], [[]], LinkingConfig())
    store.delete("n1", T0, "other")
    linked = store.insert([new], [None], "m", "a", plan=plan)
    assert [link.target_id for link in linked.links] == ["n2"]
    assert [(link.source_id, link.target_id) for link in store.links("n3")] == [("n3", "n2")]
