"""Executemany of one Core statement (a bulk INSERT, or an UPDATE keyed by bound parameters),
with the parameter rows prepared here on SQLite instead of by SQLAlchemy's execution context.

An ingested note writes about ten rows (the note, its history, links, a job, a change). For an
executemany, SQLAlchemy builds each row's parameters in Python (``construct_params`` and a dict
per row) before its bind processors run: ~12 µs a row more than the driver's own executemany (a
600-row history insert: 25 against 13 µs a row). Without that the store's CPU per note at 100k
fell from 0.85-0.91 to 0.74-0.80 ms (docs/benchmarks.md, issue 2, twenty-first look).

On SQLite the statement is compiled once per set of keys and the rows go to the driver as tuples,
each value converted by its column type's own SQLAlchemy bind processor, so the stored values are
the ones SQLAlchemy writes (tests compare raw rows). Time columns are converted once per distinct
value in a call: a batch's "now" is on every row. On other dialects (PostgreSQL) the rows take
SQLAlchemy's path unchanged.

Usage: ``INSERT_NOTES = Executemany(insert(NoteRow.__table__))``; ``INSERT_NOTES(session, rows)``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from memory.sqltypes import UTCDateTime

Convert = Callable[[Any], Any]


class Executemany:
    """One statement run with many parameter rows; every row must carry the same keys."""

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._lock = threading.Lock()
        self._compiled: dict[tuple[Any, ...], tuple[str, list[str], list[ColumnRule]]] = {}

    def __call__(self, conn: Connection | Session, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        connection = conn.connection() if isinstance(conn, Session) else conn
        if connection.dialect.name != "sqlite":
            connection.execute(self._statement, list(rows))
            return
        sql, keys, converts = self._sqlite_form(connection.dialect, tuple(rows[0]))
        connection.exec_driver_sql(sql, _tuples(rows, keys, converts))

    def _sqlite_form(self, dialect: Dialect, keys: tuple[str, ...]) -> tuple[str, list[str], list[ColumnRule]]:
        # The JSON bind processor calls the engine's json_serializer: engines made with their own
        # get processors of their own.
        cache_key = (keys, getattr(dialect, "_json_serializer", None))
        with self._lock:
            form = self._compiled.get(cache_key)
            if form is None:
                form = self._compiled[cache_key] = _compile(self._statement, dialect, keys)
            return form


def _compile(statement: Executable, dialect: Dialect, keys: tuple[str, ...]) -> tuple[str, list[str], list[ColumnRule]]:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    names = list(compiled.positiontup or ())
    missing = [name for name in names if name not in keys]
    if missing:
        # SQLAlchemy would fill Python-side defaults here; the rows must spell every value out.
        raise ValueError(f"bulk rows lack {missing} for {compiled.string.split('(')[0].strip()!r}")
    converts = [_converter(compiled.binds[name].type, dialect) for name in names]
    return compiled.string, names, converts


def _converter(sql_type: Any, dialect: Dialect) -> ColumnRule:
    """SQLAlchemy's bind processor of ``sql_type`` on ``dialect`` (None: the value goes as it is),
    memoised per call for the time columns."""
    convert = sql_type.dialect_impl(dialect).bind_processor(dialect)
    return _Memoised(convert) if convert is not None and isinstance(sql_type, UTCDateTime) else convert


class _Memoised:
    """Marks a converter whose values repeat within a call (see ``_tuples``)."""

    def __init__(self, convert: Convert) -> None:
        self.convert = convert


# per column: SQLAlchemy's bind processor, the same memoised, or None (the value goes as it is)
ColumnRule = Convert | _Memoised | None


def _tuples(rows: Sequence[Mapping[str, Any]], keys: list[str], converts: list[ColumnRule]) -> list[tuple[Any, ...]]:
    columns = []
    for key, convert in zip(keys, converts, strict=True):
        values = [row[key] for row in rows]
        if isinstance(convert, _Memoised):
            seen: dict[Any, Any] = {}
            values = [seen[v] if v in seen else seen.setdefault(v, convert.convert(v)) for v in values]
        elif convert is not None:
            values = [convert(v) for v in values]
        columns.append(values)
    return list(zip(*columns, strict=True))
