"""Alembic environment of the control tables (tenants, API keys; memory/accounts.py), run when
``open_accounts_engine`` opens the control database."""
from __future__ import annotations

from memory.accounts import _Base  # noqa: PLC2701 - the tree of that module
from memory.migrate import run_env

run_env(_Base.metadata, "alembic_version_accounts")
