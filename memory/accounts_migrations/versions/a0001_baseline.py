"""accounts baseline: tenants, api keys

Revision ID: a0001
Revises: (none)
Create Date: 2026-11-22 07:30:49.133269
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'a0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('engram_tenants',
    sa.Column('id', sa.String(length=48), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('engram_api_keys',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=48), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('salt', sa.String(length=64), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['engram_tenants.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('engram_api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engram_api_keys_tenant_id'), ['tenant_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('engram_api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_engram_api_keys_tenant_id'))

    op.drop_table('engram_api_keys')
    op.drop_table('engram_tenants')
