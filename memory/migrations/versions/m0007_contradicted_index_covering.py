"""links: the contradicts index covers its query (target_id, kind, source_id)

Revision ID: m0007
Revises: m0006
Create Date: 2026-12-05 19:40:00

Why: with only target_id in it, SQLite's planner (no ANALYZE statistics) found it and
ix_links_target_id equally good for a search's supersession check, and took whichever came first
in the schema. Once ix_links_target_id had been built again after a bulk ingest (memory/
deferred_indexes.py) it came second, and every search read all ~5 links of each candidate
instead of the rare contradicts ones. A covering index wins on cost whatever the order.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'm0007'
down_revision = 'm0006'
branch_labels = None
depends_on = None

_WHERE = sa.text("kind = 'contradicts'")


def upgrade() -> None:
    op.drop_index('ix_links_contradicted', table_name='links')
    op.create_index('ix_links_contradicted', 'links', ['target_id', 'kind', 'source_id'], unique=False,
                    sqlite_where=_WHERE, postgresql_where=_WHERE)


def downgrade() -> None:
    op.drop_index('ix_links_contradicted', table_name='links')
    op.create_index('ix_links_contradicted', 'links', ['target_id'], unique=False,
                    sqlite_where=_WHERE, postgresql_where=_WHERE)
