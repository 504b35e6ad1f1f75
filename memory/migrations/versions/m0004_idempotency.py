"""idempotency: keys of adds, so a client's retry does not store a note twice

Revision ID: m0004
Revises: m0003
Create Date: 2026-12-02 18:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'm0004'
down_revision = 'm0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database made by create_all before migrations (adopted at m0001) has the table already.
    if sa.inspect(op.get_bind()).has_table('idempotency'):
        return
    op.create_table('idempotency',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('note_ids', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('idempotency')
