"""Migrations: each tree brings an empty database to exactly its SQLAlchemy metadata, on both backends,
so a table or column added to a schema module without a migration fails here."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from graph.schema import GraphBase
from graph.store import GRAPH_MIGRATIONS, GraphStore
from memory.database import MEMORY_MIGRATIONS, open_engine, postgres_driver_url, sqlite_url
from memory.errors import InvalidInput
from memory.migrate import current_revision, head_revision, upgrade
from memory.schema import Base
from tests.helpers import POSTGRES_URL, drop_pg_schema


def _diff(engine, metadata, tree):
    """Differences between the migrated database and ``metadata``, ignoring the other tree's tables."""
    def own(name, type_, parent_names):
        return type_ != "table" or name in metadata.tables
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": own,
                                                     "version_table": tree.version_table})
        return compare_metadata(ctx, metadata)


def test_memory_migrations_equal_the_metadata(database_url):
    engine = open_engine(database_url)
    assert current_revision(engine, MEMORY_MIGRATIONS) == head_revision(MEMORY_MIGRATIONS)
    assert _diff(engine, Base.metadata, MEMORY_MIGRATIONS) == []
    engine.dispose()


def test_graph_migrations_equal_the_metadata(database_url):
    engine = open_engine(database_url)
    GraphStore(engine)
    assert current_revision(engine, GRAPH_MIGRATIONS) == head_revision(GRAPH_MIGRATIONS)
    assert _diff(engine, GraphBase.metadata, GRAPH_MIGRATIONS) == []
    names = set(inspect(engine).get_table_names())
    assert {"alembic_version_memory", "alembic_version_graph"} <= names
    engine.dispose()


def test_the_comparison_sees_a_table_without_migration(database_url):
    """The check above could fail: a table only in the metadata is reported."""
    from sqlalchemy import Column, Integer, MetaData, Table

    extra = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extra)
    Table("unmigrated", extra, Column("id", Integer, primary_key=True))
    engine = open_engine(database_url)
    diff = _diff(engine, extra, MEMORY_MIGRATIONS)
    assert [d[0] for d in diff] == ["add_table"] and diff[0][1].name == "unmigrated"
    engine.dispose()


def test_reopening_is_a_no_op_and_keeps_data(database_url):
    engine = open_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO changes (note_id, op, at) VALUES ('n', 'upsert', '2026-01-01 00:00:00')"))
    engine.dispose()
    again = open_engine(database_url)
    with again.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM changes")).scalar() == 1
    again.dispose()


def test_a_database_made_before_migrations_is_adopted(tmp_path):
    """Files created by create_all (before Alembic, so without changes.origin) have the tables but
    no version table: they are stamped at the baseline and upgraded from there."""
    url = sqlite_url(tmp_path / "old.db")
    old = create_engine(url)
    Base.metadata.create_all(old)
    with old.begin() as conn:
        conn.execute(text("ALTER TABLE changes DROP COLUMN origin"))
        conn.execute(text("INSERT INTO changes (note_id, op, at) VALUES ('n', 'upsert', '2026-01-01 00:00:00')"))
    old.dispose()
    engine = open_engine(url)
    assert current_revision(engine, MEMORY_MIGRATIONS) == head_revision(MEMORY_MIGRATIONS)
    assert _diff(engine, Base.metadata, MEMORY_MIGRATIONS) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM changes")).scalar() == 1
    engine.dispose()


def test_db_schema_is_created_and_isolates_tenants():
    schemas = ["engram_t_pgtest_a", "engram_t_pgtest_b"]
    try:
        a = open_engine(POSTGRES_URL, schema=schemas[0])
        b = open_engine(POSTGRES_URL, schema=schemas[1])
        with a.begin() as conn:
            conn.execute(text("INSERT INTO changes (note_id, op, at) VALUES ('n', 'upsert', '2026-01-01 00:00:00')"))
        with a.connect() as ca, b.connect() as cb:
            assert ca.execute(text("SELECT current_schema()")).scalar() == schemas[0]
            assert ca.execute(text("SELECT count(*) FROM changes")).scalar() == 1
            assert cb.execute(text("SELECT count(*) FROM changes")).scalar() == 0
        a.dispose()
        b.dispose()
    finally:
        for schema in schemas:
            drop_pg_schema(schema)


@pytest.mark.parametrize("bad", ["Upper", "with-dash", "x" * 64, "pg_catalog", "a;drop", ""])
def test_bad_schema_names_are_refused(bad):
    with pytest.raises(InvalidInput):
        open_engine(POSTGRES_URL, schema=bad)


def test_db_schema_on_sqlite_is_refused(tmp_path):
    with pytest.raises(InvalidInput):
        open_engine(sqlite_url(tmp_path / "x.db"), schema="tenant")


def test_plain_postgresql_urls_use_psycopg_3():
    assert postgres_driver_url("postgresql://postgres@127.0.0.1/test").startswith("postgresql+psycopg://")
    assert postgres_driver_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"


def test_upgrade_is_idempotent(database_url):
    engine = open_engine(database_url)
    upgrade(engine, MEMORY_MIGRATIONS)
    upgrade(engine, MEMORY_MIGRATIONS)
    assert current_revision(engine, MEMORY_MIGRATIONS) == head_revision(MEMORY_MIGRATIONS)
    engine.dispose()


def test_accounts_migrations_equal_the_metadata(database_url):
    """The control tables (tenants, API keys) have their own tree and version table too."""
    from memory.accounts import _Base, ACCOUNTS_MIGRATIONS, open_accounts_engine

    engine = open_accounts_engine(database_url)
    assert current_revision(engine, ACCOUNTS_MIGRATIONS) == head_revision(ACCOUNTS_MIGRATIONS)
    assert _diff(engine, _Base.metadata, ACCOUNTS_MIGRATIONS) == []
    engine.dispose()


def test_the_accounts_file_has_the_store_pragmas(tmp_path):
    """The control database is a SQLite file like the stores: WAL, so that key checks read while
    an admin writes, and foreign keys enforced (an API key's tenant must exist)."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from memory.accounts import open_accounts_engine
    from memory.database import sqlite_url

    engine = open_accounts_engine(sqlite_url(tmp_path / "control.db"))
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        with pytest.raises(IntegrityError):
            conn.execute(text("INSERT INTO engram_api_keys (id, tenant_id, label, salt, digest, created_at) "
                              "VALUES ('k1', 'nobody', '', 's', 'd', '2026-01-01 00:00:00')"))
    engine.dispose()


_OPEN_AT = """
import sys, time
from graph.store import GRAPH_MIGRATIONS
from memory.database import MEMORY_MIGRATIONS, sqlite_engine
from memory.migrate import upgrade
url, go = sys.argv[1], float(sys.argv[2])
engine = sqlite_engine(url)
with engine.connect():
    pass
time.sleep(max(0.0, go - time.time()))
upgrade(engine, MEMORY_MIGRATIONS)
upgrade(engine, GRAPH_MIGRATIONS)
"""


def test_processes_opening_one_new_file_at_once_migrate_it_once(tmp_path):
    """`engram serve` and its worker open a new tenant's file at the same moment. The second
    opener must wait for the first, then find the head revision: it used to migrate again and fail
    on the version row ("UNIQUE constraint failed: alembic_version_graph.version_num")."""
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    url = sqlite_url(tmp_path / "race.db")
    go = time.time() + 8  # every process imported and connected by then, so all start together
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT, url, str(go)], cwd=ROOT, stderr=subprocess.PIPE,
                              text=True) for _ in range(6)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    engine = create_engine(url)
    assert current_revision(engine, MEMORY_MIGRATIONS) == head_revision(MEMORY_MIGRATIONS)
    assert current_revision(engine, GRAPH_MIGRATIONS) == head_revision(GRAPH_MIGRATIONS)
    engine.dispose()


def test_threads_opening_new_files_at_once_take_turns(tmp_path):
    """Alembic's migration context is module-global: two tenants opened at once by two threads of
    one server must not migrate at the same time (each on its own file)."""
    import threading

    urls = [sqlite_url(tmp_path / f"tenant{i}.db") for i in range(4)]
    barrier, errors = threading.Barrier(len(urls)), []

    def open_one(url):
        engine = create_engine(url)
        barrier.wait()
        try:
            upgrade(engine, GRAPH_MIGRATIONS)
        except Exception as exc:  # noqa: BLE001 (collected for the assertion)
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=open_one, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
