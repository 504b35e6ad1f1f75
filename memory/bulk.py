"""Executemany of one Core statement (a bulk INSERT, or an UPDATE keyed by bound parameters),
with the values converted here on SQLite instead of by SQLAlchemy.

An ingested note writes about ten rows (the note, its history, links, a job, a change). SQLAlchemy
turns each value into its database form through a chain of bind processors, ~12 µs a row more
than the driver's own executemany (a 600-row history insert: 25 against 13 µs a row). Without
them the store's CPU per note at 100k fell from 0.85-0.91 to 0.74-0.80 ms (docs/benchmarks.md,
issue 2, twenty-first look).

On SQLite the statement is compiled once per set of keys and the rows go to the driver as tuples,
each value converted by the column type's rule below; the stored values are byte for byte the
ones SQLAlchemy writes (tests compare raw rows). On other dialects (PostgreSQL) the rows take
SQLAlchemy's path unchanged.

Usage: ``INSERT_NOTES = Executemany(insert(NoteRow.__table__))``; ``INSERT_NOTES(session, rows)``.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from memory.sqltypes import UTCDateTime

Convert = Callable[[Any], Any]


class Executemany:
    """One statement run with many parameter rows; every row must carry the same keys."""

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._lock = threading.Lock()
        self._compiled: dict[tuple[str, ...], tuple[str, list[str], list[Convert | None]]] = {}

    def __call__(self, conn: Connection | Session, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        connection = conn.connection() if isinstance(conn, Session) else conn
        if connection.dialect.name != "sqlite" or _own_json(connection.dialect):
            connection.execute(self._statement, list(rows))
            return
        sql, keys, converts = self._sqlite_form(connection.dialect, tuple(rows[0]))
        connection.exec_driver_sql(sql, _tuples(rows, keys, converts))

    def _sqlite_form(self, dialect: Dialect, keys: tuple[str, ...]) -> tuple[str, list[str], list[Convert | None]]:
        with self._lock:
            form = self._compiled.get(keys)
            if form is None:
                form = self._compiled[keys] = _compile(self._statement, dialect, keys)
            return form


def _compile(statement: Executable, dialect: Dialect, keys: tuple[str, ...]) -> tuple[str, list[str], list[Convert | None]]:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    names = list(compiled.positiontup or ())
    missing = [name for name in names if name not in keys]
    if missing:
        # SQLAlchemy would fill Python-side defaults here; the rows must spell every value out.
        raise ValueError(f"bulk rows lack {missing} for {compiled.string.split('(')[0].strip()!r}")
    converts = [_converter(compiled.binds[name].type, dialect) for name in names]
    return compiled.string, names, converts


def _converter(sql_type: Any, dialect: Dialect) -> Convert | None:
    """The SQLite form of a value of ``sql_type``: fast rules for the types the hot tables use,
    SQLAlchemy's own bind processor for anything else."""
    if isinstance(sql_type, UTCDateTime):
        return _sqlite_time
    if isinstance(sql_type, JSON) and not sql_type.none_as_null:
        return json.dumps  # None becomes the JSON text 'null', as SQLAlchemy stores it
    if isinstance(sql_type, Boolean):
        return _sqlite_bool
    return sql_type.dialect_impl(dialect).bind_processor(dialect)


def _own_json(dialect: Dialect) -> bool:
    """An engine made with its own ``json_serializer``: the fast path would write other JSON text."""
    return getattr(dialect, "_json_serializer", None) not in (None, json.dumps)


def _sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DATETIME text of UTCDateTime's value: naive UTC, always microseconds."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    text = str(value)
    return text if value.microsecond else text + ".000000"


def _sqlite_bool(value: bool | None) -> int | None:
    return None if value is None else int(bool(value))


def _tuples(rows: Sequence[Mapping[str, Any]], keys: list[str], converts: list[Convert | None]) -> list[tuple[Any, ...]]:
    # A batch repeats a few timestamps (its "now" is on every row): each distinct one is
    # converted once per call.
    memo: list[dict[Any, Any] | None] = [{} if c is _sqlite_time else None for c in converts]
    columns = []
    for key, convert, seen in zip(keys, converts, memo, strict=True):
        values = [row[key] for row in rows]
        if convert is not None:
            values = _convert_all(values, convert, seen)
        columns.append(values)
    return list(zip(*columns, strict=True))


def _convert_all(values: list[Any], convert: Convert, seen: dict[Any, Any] | None) -> list[Any]:
    if seen is None:
        return [convert(v) for v in values]
    out = []
    for v in values:
        converted = seen.get(v, _MISSING)
        if converted is _MISSING:
            converted = seen[v] = convert(v)
        out.append(converted)
    return out


_MISSING = object()
