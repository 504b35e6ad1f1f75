"""Alembic environment of memory's tables: runs on the connection handed over by memory.migrate.

Only online mode on a given connection: migrations run when a store opens (``memory.migrate``), or
from a developer's shell through the same function, never against a URL read from a config file.
"""
from __future__ import annotations

from alembic import context

from memory.schema import Base

config = context.config
connection = config.attributes["connection"]


def _own_tables(name: str | None, type_: str, _parents: dict[str, str | None]) -> bool:
    """Autogenerate compares only this tree's tables: the other tree's (and its version table)
    share the database and must never show up as tables to drop."""
    return type_ != "table" or name in Base.metadata.tables


context.configure(
    connection=connection,
    include_name=_own_tables,
    target_metadata=Base.metadata,
    version_table=config.attributes.get("version_table", "alembic_version_memory"),
    # SQLite cannot ALTER most things: batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
