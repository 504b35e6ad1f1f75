"""Alembic migrations run on open: every store brings its own tables to the head revision.

Each layer keeps its own migration tree and version table (``memory/migrations`` with
``alembic_version_memory``, ``graph/migrations`` with ``alembic_version_graph``), so memory never
needs to know graph's tables. Usage: ``upgrade(engine, MigrationTree(folder, "alembic_version_x", "t"))``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect, text


_IN_PROCESS = threading.Lock()


@dataclass(frozen=True)
class MigrationTree:
    """One layer's migrations: where they live, their version table, and a table whose presence
    without a version table means "made by create_all before migrations existed" (adopted)."""

    folder: Path
    version_table: str
    marker_table: str


def upgrade(engine: Engine, tree: MigrationTree) -> None:
    """Bring the database to ``tree``'s head; a no-op (one SELECT) when it is there already.

    On PostgreSQL an advisory lock (per schema and tree) makes concurrent openers take turns, and
    the DDL runs in the same transaction, so a second process sees either nothing or everything;
    on SQLite the migration holds the file's write lock (BEGIN IMMEDIATE) from the version check on.
    """
    head = _scripts(str(tree.folder)).get_current_head()
    with engine.connect() as conn:
        if _current(conn, tree) == head:
            return
    # Alembic runs migrations through a module-global context, so two threads of one process
    # (two tenants opened at once) must not migrate at the same time, whatever the database.
    with _IN_PROCESS, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('engram.migrate.' || current_schema() || :t))"),
                         {"t": tree.version_table})
        elif conn.dialect.name == "sqlite":
            # The write lock before reading the version: `engram serve` and its worker open a new
            # file at once, and both read "no version" and migrated (the second failed).
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        current = _current(conn, tree)
        if current == head:
            return
        cfg = _config(conn, tree)
        if current is None and inspect(conn).has_table(tree.marker_table):
            command.stamp(cfg, _base_revision(tree))
        command.upgrade(cfg, "head")


def run_env(metadata: MetaData, default_version_table: str) -> None:
    """The body of every tree's ``env.py``: online mode on the connection ``upgrade`` hands over,
    never against a URL read from a config file."""
    from alembic import context

    config = context.config
    connection = config.attributes["connection"]

    def own_tables(name: str | None, type_: str, _parents: dict[str, str | None]) -> bool:
        # Autogenerate compares only this tree's tables: the other trees' (and their version
        # tables) share the database and must never show up as tables to drop.
        return type_ != "table" or name in metadata.tables

    context.configure(
        connection=connection,
        include_name=own_tables,
        target_metadata=metadata,
        version_table=config.attributes.get("version_table", default_version_table),
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def current_revision(engine: Engine, tree: MigrationTree) -> str | None:
    """The revision the database is at (None before the first migration)."""
    with engine.connect() as conn:
        return _current(conn, tree)


def head_revision(tree: MigrationTree) -> str | None:
    return _scripts(str(tree.folder)).get_current_head()


def _current(conn: Connection, tree: MigrationTree) -> str | None:
    return MigrationContext.configure(conn, opts={"version_table": tree.version_table}).get_current_revision()


def _config(conn: Connection, tree: MigrationTree) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(tree.folder))
    cfg.attributes["connection"] = conn
    cfg.attributes["version_table"] = tree.version_table
    return cfg


def _base_revision(tree: MigrationTree) -> str:
    bases = _scripts(str(tree.folder)).get_bases()
    assert len(bases) == 1, f"{tree.folder} must have one base revision, found {bases}"
    return bases[0]


@lru_cache(maxsize=8)
def _scripts(folder: str) -> ScriptDirectory:
    """Parsed once per process: opening a store must not re-read every migration file."""
    cfg = Config()
    cfg.set_main_option("script_location", folder)
    return ScriptDirectory.from_config(cfg)
