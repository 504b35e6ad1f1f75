"""jobs: the durable enrichment queue

Revision ID: m0003
Revises: m0002
Create Date: 2026-11-22 06:59:29.033880
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'm0003'
down_revision = 'm0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database made by create_all after the queue existed but before migrations (adopted at
    # m0001) has this table already.
    if sa.inspect(op.get_bind()).has_table('jobs'):
        return
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('note_id', sa.String(length=36), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('next_run_at', sa.DateTime(), nullable=False),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_claim', ['state', 'next_run_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_note_id'), ['note_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_note_id'))
        batch_op.drop_index('ix_jobs_claim')

    op.drop_table('jobs')
