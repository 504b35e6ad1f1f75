"""Alembic environment of memory's tables: runs on the connection handed over by memory.migrate."""
from __future__ import annotations

from memory.schema import Base
from memory.migrate import run_env

run_env(Base.metadata, "alembic_version_memory")
