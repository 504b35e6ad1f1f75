"""links: drop ix_links_source_id, which uq_link's index (source_id, target_id, kind) makes redundant

Revision ID: m0006
Revises: m0005
Create Date: 2026-12-04 13:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'm0006'
down_revision = 'm0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if 'ix_links_source_id' in {ix['name'] for ix in sa.inspect(op.get_bind()).get_indexes('links')}:
        op.drop_index('ix_links_source_id', table_name='links')


def downgrade() -> None:
    op.create_index('ix_links_source_id', 'links', ['source_id'], unique=False)
