"""Engine creation: one place that knows SQLite's pragmas, PostgreSQL's driver, pool and schemas."""
from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from memory.deferred_indexes import restore_indexes
from memory.errors import InvalidInput, StorageError
from memory.migrate import MigrationTree, upgrade

MEMORY_MIGRATIONS = MigrationTree(Path(__file__).parent / "migrations", "alembic_version_memory", "notes")
# A PostgreSQL identifier we can put in search_path without quoting (63 bytes is its length limit).
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_BUSY_SECONDS = 30  # how long a SQLite connection waits for another's lock before it gives up


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file. Usage: ``sqlite_url("engram.db")``."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def open_engine(url: str, *, durable: bool = True, schema: str | None = None) -> Engine:
    """Create the engine and bring memory's tables to the newest migration.

    ``durable`` makes SQLite fsync every commit. ``schema`` (PostgreSQL only) is created if missing
    and every connection of the engine works inside it: one schema per tenant, same tables.
    WAL lets readers run beside the single writer; synchronous=FULL makes an acknowledged write
    survive power loss, not only a process crash (NORMAL would lose the last commits then).
    """
    if is_sqlite(url) and schema is not None:
        raise InvalidInput("db_schema needs a PostgreSQL database_url; SQLite has one schema per file")
    try:
        if is_sqlite(url):
            engine = sqlite_engine(url, durable=durable)
        else:
            engine = _postgres_engine(url, schema)
        upgrade(engine, MEMORY_MIGRATIONS)
        restore_indexes(engine)  # an ingest that died while it had them dropped
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot open the database: {exc.__class__.__name__}: {exc}") from exc
    return engine


def bookkeeping_engine(engine: Engine) -> Engine:
    """An engine for writes that record use, not content (recalls and their access log): on
    SQLite a second engine on the same file whose commits skip the fsync (synchronous=NORMAL in
    WAL mode: safe against a process crash, may lose the last such commits on power loss, never
    corrupts). Every search writes one of these, and on this machine an fsync costs 2-15 ms, more
    than the rest of a search. On PostgreSQL the same engine: those transactions say
    ``SET LOCAL synchronous_commit TO OFF`` themselves. Notes, links, history and jobs keep
    fully durable commits."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return engine  # PostgreSQL; or an in-memory SQLite, which a second engine would not share
    return sqlite_engine(engine.url, durable=False)


def sqlite_engine(url: str | URL, *, durable: bool = True) -> Engine:
    """An engine on a SQLite file whose every connection gets Engram's pragmas (WAL, fsync policy,
    foreign keys, busy timeout, page cache); no migration. Usage: ``sqlite_engine(sqlite_url(p))``."""
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": _BUSY_SECONDS})
    _install_sqlite_pragmas(engine, durable)
    return engine


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def postgres_driver_url(url: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; Engram ships psycopg 3, so say so."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def check_schema_name(schema: str) -> str:
    """A tenant schema name: lower-case letters, digits and underscores, at most 63 characters."""
    if not isinstance(schema, str) or not _SCHEMA.fullmatch(schema) or schema.startswith("pg_"):
        raise InvalidInput(f"invalid db_schema {schema!r}: use [a-z_][a-z0-9_]*, at most 63 characters, not pg_*")
    return schema


def _postgres_engine(url: str, schema: str | None) -> Engine:
    connect_args: dict[str, Any] = {}
    if schema is not None:
        # search_path as a connection option: it holds from the first statement of every pooled
        # connection (also LISTEN and migration connections) and no transaction can roll it back.
        connect_args["options"] = f"-csearch_path={check_schema_name(schema)}"
    engine = create_engine(postgres_driver_url(url), pool_pre_ping=True, connect_args=connect_args)
    if schema is not None:
        _create_schema(engine, schema)
    return engine


def _create_schema(engine: Engine, schema: str) -> None:
    with engine.begin() as conn:
        # Two processes creating the same tenant at once would race on pg_namespace's unique index.
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('engram.schema.' || :s))"), {"s": schema})
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


def _enter_wal(cur: sqlite3.Cursor) -> None:
    """Switch the file to WAL, retrying while another connection is switching it. SQLite answers
    "database is locked" to that pragma without calling the busy handler when several processes
    open a new file at once (serve and its worker on a new tenant): seen once in CI, and in about
    one of 240 opens by six processes at once here (one retry was enough)."""
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _install_sqlite_pragmas(engine: Engine, durable: bool) -> None:
    sync = "FULL" if durable else "NORMAL"

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        _enter_wal(cur)
        cur.execute(f"PRAGMA synchronous={sync}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={_BUSY_SECONDS * 1000}")
        # 64 MiB of page cache (up to, per connection; the default is 2 MiB): at 100k notes an
        # ingest batch's index inserts land all over the file's B-trees, and with the default
        # cache each batch read them back from the OS. Ingest's commit stage: 0.59-0.72 ms CPU
        # per note before, 0.56-0.62 after (5,120 notes after 100k, three interleaved rounds).
        cur.execute("PRAGMA cache_size=-65536")
        # No memory map (mmap_size stays 0). Reads through a map looked faster alone (a search's
        # ~75 note rows: 0.55 ms against 0.8-1.0), but every search also commits its recalls, and a
        # connection that finds the file changed by another connection drops its mapping and
        # faults the pages in again. Measured at 100k notes, searches with their recall writes,
        # interleaved: p50/p95 9.7/14.4 ms unmapped against 11.8/16.2 ms with a 256 MiB map.
        cur.close()
