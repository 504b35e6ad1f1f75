"""memory/bulk.py: on SQLite, rows written by Executemany are byte for byte the rows SQLAlchemy
writes for the same statement (two real SQLite files, compared raw); bad rows fail loudly."""
import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, create_engine, insert, update
from sqlalchemy.exc import IntegrityError

from memory.bulk import Executemany
from memory.database import open_engine, sqlite_url
from memory.schema import AccessRow, ChangeRow, HistoryRow, JobRow, LinkRow, NoteRow

NOTES = NoteRow.__table__
TOKYO = timezone(timedelta(hours=9))
TIMES = [datetime(2026, 1, 1, 9, 0, tzinfo=UTC), datetime(2026, 1, 1, 9, 0, 0, 1, tzinfo=UTC),
         datetime(2026, 3, 5, 23, 59, 59, 999999, tzinfo=TOKYO), datetime(1, 1, 1, tzinfo=UTC),
         datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2025, 6, 1, 12, 30)]  # the last one naive


def _note(i: int) -> dict:
    t = TIMES[i % len(TIMES)]
    return {"id": f"n{i}", "user_id": f"u{i % 2}", "agent_id": None if i % 3 else "a", "session_id": None,
            "content": f"note {i} — café ☕", "keywords": ["k", f"w{i}"], "tags": [] if i % 2 else ["t"],
            "context": "c", "metadata": {"i": i, "nested": {"x": [1.5, None, True]}} if i % 2 else {},
            "created_at": TIMES[0], "updated_at": t, "event_time": t, "last_recalled_at": None if i % 2 else t,
            "recall_count": i, "strength": 10.0 + i / 3, "importance": 0.5, "archived": bool(i % 2),
            "embedding": None if i == 3 else bytes(range(i, i + 16)), "embed_model": None if i == 3 else "m"}


def _rows(path) -> dict[str, list]:
    with sqlite3.connect(path) as conn:
        tables = ["notes", "history", "links", "jobs", "changes", "accesses"]
        return {t: conn.execute(f"SELECT *, {_typeofs(conn, t)} FROM {t} ORDER BY rowid").fetchall() for t in tables}


def _typeofs(conn: sqlite3.Connection, table: str) -> str:
    return ", ".join(f"typeof({row[1]})" for row in conn.execute(f"PRAGMA table_info({table})"))


def _write(engine, run) -> None:
    notes = [_note(i) for i in range(12)]
    history = [{"note_id": n["id"], "action": "add", "old": None, "new": {"content": n["content"], "at": "x"},
                "actor": "user", "at": TIMES[i % len(TIMES)]} for i, n in enumerate(notes)]
    links = [{"source_id": f"n{i}", "target_id": f"n{i - 1}", "kind": "related", "weight": 0.5 + i / 100,
              "created_at": TIMES[0]} for i in range(1, 12)]
    jobs = [{"kind": "graph", "note_id": f"n{i}", "payload": {}, "state": "queued", "attempts": 0, "max_attempts": 5,
             "next_run_at": TIMES[2], "lease_until": None, "last_error": None, "result": None,
             "created_at": TIMES[0], "updated_at": TIMES[0]} for i in range(3)]
    changes = [{"note_id": f"n{i}", "op": "upsert", "at": TIMES[1], "origin": None if i else "o"} for i in range(3)]
    accesses = [{"note_id": f"n{i}", "kind": "search", "query": None if i else "q", "retention": 0.25,
                 "strength_after": 12.0, "at": TIMES[i]} for i in range(4)]
    recall = update(NOTES).where(NOTES.c.id == bindparam("nid")).values(
        strength=bindparam("strength"), last_recalled_at=bindparam("last_recalled_at"),
        recall_count=bindparam("recall_count"), keywords=bindparam("keywords"))
    recalls = [{"nid": f"n{i}", "strength": 20.0, "last_recalled_at": TIMES[i], "recall_count": 7,
                "keywords": ["evolved", "ü"]} for i in (5, 1, 3)]
    with engine.begin() as conn:
        for stmt, rows in [(insert(NOTES), notes), (insert(HistoryRow.__table__), history),
                           (insert(LinkRow.__table__), links), (insert(JobRow.__table__), jobs),
                           (insert(ChangeRow.__table__), changes), (insert(AccessRow.__table__), accesses),
                           (recall, recalls)]:
            run(conn, stmt, rows)


def test_rows_match_sqlalchemys_byte_for_byte(tmp_path):
    theirs, ours = tmp_path / "sqlalchemy.db", tmp_path / "bulk.db"
    _write(open_engine(sqlite_url(theirs)), lambda conn, stmt, rows: conn.execute(stmt, rows))
    _write(open_engine(sqlite_url(ours)), lambda conn, stmt, rows: Executemany(stmt)(conn, rows))
    expected, got = _rows(theirs), _rows(ours)
    assert all(expected[t] for t in expected)  # every table written
    assert got == expected


def test_rows_without_a_column_fail_before_writing(tmp_path):
    engine = open_engine(sqlite_url(tmp_path / "e.db"))
    row = _note(1)
    del row["embed_model"]  # SQLAlchemy would bind NULL; the fast path will not guess
    stmt = Executemany(insert(NOTES))
    with engine.begin() as conn, pytest.raises(KeyError):
        stmt(conn, [_note(2), row])
    defaulted = _note(3)
    del defaulted["keywords"]  # SQLAlchemy would fill the column's Python default
    with engine.begin() as conn, pytest.raises(ValueError, match="keywords"):
        stmt(conn, [defaulted])
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM notes").scalar() == 0


def test_a_constraint_violation_is_sqlalchemys_error_and_rolls_back(tmp_path):
    engine = open_engine(sqlite_url(tmp_path / "e.db"))
    stmt = Executemany(insert(NOTES))
    with engine.connect() as conn:
        stmt(conn, [])  # nothing to write: no statement, no error
    with pytest.raises(IntegrityError), engine.begin() as conn:
        stmt(conn, [_note(1), _note(2), _note(1)])
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM notes").scalar() == 0


def test_an_engine_with_its_own_json_serializer_keeps_it(tmp_path):
    """One statement used on a default engine first, then on one with its own serializer."""
    stmt = Executemany(insert(NOTES))
    with open_engine(sqlite_url(tmp_path / "default.db")).begin() as conn:
        stmt(conn, [_note(1)])
    url = sqlite_url(tmp_path / "e.db")
    open_engine(url).dispose()  # the migrated schema
    compact = create_engine(url, json_serializer=lambda v: json.dumps(v, separators=(",", ":")))
    with compact.begin() as conn:
        stmt(conn, [_note(1)])
    with sqlite3.connect(tmp_path / "e.db") as conn:
        assert conn.execute("SELECT keywords, metadata FROM notes").fetchone() == (
            '["k","w1"]', '{"i":1,"nested":{"x":[1.5,null,true]}}')
    with sqlite3.connect(tmp_path / "default.db") as conn:
        assert conn.execute("SELECT keywords FROM notes").fetchone() == ('["k", "w1"]',)
