"""changes.origin: which writer made a change, so its own follower can skip it

Revision ID: m0002
Revises: m0001
Create Date: 2026-11-22 06:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'm0002'
down_revision = 'm0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.drop_column('origin')
