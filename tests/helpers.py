"""Constants and small builders shared by tests (import as ``tests.helpers``)."""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

# The PostgreSQL of this machine and of CI (trust auth); ENGRAM_TEST_POSTGRES_URL points elsewhere.
POSTGRES_URL = os.environ.get("ENGRAM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_schema_url(schema: str, *, create: bool) -> str:
    """A URL whose connections all work inside ``schema`` (created first when ``create``)."""
    if create:
        _pg_admin(f'CREATE SCHEMA "{schema}"')
    return f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"


def drop_pg_schema(schema: str) -> None:
    # A leaked idle-in-transaction connection must fail the drop loudly, not hang the suite.
    _pg_admin("SET lock_timeout = '20s'", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _pg_admin(*statements: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


def index_names(engine, *tables: str) -> set[str]:
    """The names of the indexes on ``tables`` as the database has them now (SQLite or PostgreSQL)."""
    from sqlalchemy import inspect

    inspector = inspect(engine)  # a new one each call: an inspector caches what it read
    return {ix["name"] for table in tables for ix in inspector.get_indexes(table)}
