"""Transactions for the SQL stores (notes, jobs, graph): one place that turns SQLAlchemy's errors
into StorageError, so no caller ever sees a foreign exception type."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from memory.errors import StorageError


@contextmanager
def _storage_errors() -> Iterator[None]:
    """SQLAlchemy's errors inside the block leave it as StorageError."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc


@contextmanager
def session_tx(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """An ORM session in one transaction: committed when the block ends, rolled back on error."""
    with _storage_errors(), sessions.begin() as session:
        yield session


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """A plain connection for reads that build no ORM objects (rolled back at the end). A search
    runs several such reads; an ORM session around each cost more than the query itself."""
    with _storage_errors(), engine.connect() as conn:
        yield conn


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A plain connection in one transaction (Core statements only): committed when the block
    ends, rolled back on error. For small hot writes where an ORM session costs more than the SQL."""
    with _storage_errors(), engine.begin() as conn:
        yield conn
