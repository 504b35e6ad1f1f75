"""links: a partial index of the contradicts links by target, for a search's supersession check

Revision ID: m0005
Revises: m0004
Create Date: 2026-12-03 23:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'm0005'
down_revision = 'm0004'
branch_labels = None
depends_on = None

_WHERE = sa.text("kind = 'contradicts'")


def upgrade() -> None:
    if 'ix_links_contradicted' in {ix['name'] for ix in sa.inspect(op.get_bind()).get_indexes('links')}:
        return
    op.create_index('ix_links_contradicted', 'links', ['target_id'], unique=False,
                    sqlite_where=_WHERE, postgresql_where=_WHERE)


def downgrade() -> None:
    op.drop_index('ix_links_contradicted', table_name='links')
