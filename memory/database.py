"""Engine creation: one place that knows SQLite's pragmas and PostgreSQL's pool settings."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from memory.schema import Base


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file. Usage: ``sqlite_url("engram.db")``."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def open_engine(url: str, *, durable: bool = True) -> Engine:
    """Create the engine and the tables. ``durable`` makes SQLite fsync every commit.

    WAL lets readers run beside the single writer; synchronous=FULL makes an acknowledged write
    survive power loss, not only a process crash (NORMAL would lose the last commits then).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _install_sqlite_pragmas(engine, durable)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    Base.metadata.create_all(engine)
    return engine


def _install_sqlite_pragmas(engine: Engine, durable: bool) -> None:
    sync = "FULL" if durable else "NORMAL"

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={sync}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()
