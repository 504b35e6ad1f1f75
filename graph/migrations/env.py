"""Alembic environment of graph's tables: runs on the connection handed over by graph.store."""
from __future__ import annotations

from graph.schema import GraphBase
from memory.migrate import run_env

run_env(GraphBase.metadata, "alembic_version_graph")
