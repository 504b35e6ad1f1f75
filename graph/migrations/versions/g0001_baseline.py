"""graph baseline: episodes, entities, facts, mentions, merges

Revision ID: g0001
Revises: (none)
Create Date: 2026-11-22 06:13:04.276845
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'g0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('graph_entities',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('norm_name', sa.String(length=300), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('aliases', sa.JSON(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('embedding', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('merged_into', sa.String(length=36), nullable=True),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('agent_id', sa.String(length=255), nullable=True),
    sa.Column('session_id', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('graph_entities', schema=None) as batch_op:
        batch_op.create_index('ix_graph_entities_agent_norm', ['agent_id', 'norm_name'], unique=False)
        batch_op.create_index('ix_graph_entities_session_norm', ['session_id', 'norm_name'], unique=False)
        batch_op.create_index('ix_graph_entities_user_norm', ['user_id', 'norm_name'], unique=False)

    op.create_table('graph_episodes',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('note_id', sa.String(length=36), nullable=True),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('reference_time', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('extractor', sa.String(length=64), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('agent_id', sa.String(length=255), nullable=True),
    sa.Column('session_id', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('graph_episodes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_graph_episodes_note_id'), ['note_id'], unique=False)

    op.create_table('graph_facts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('subject_id', sa.String(length=36), nullable=False),
    sa.Column('object_id', sa.String(length=36), nullable=False),
    sa.Column('predicate', sa.String(length=64), nullable=False),
    sa.Column('fact', sa.Text(), nullable=False),
    sa.Column('embedding', sa.LargeBinary(), nullable=True),
    sa.Column('episode_ids', sa.JSON(), nullable=False),
    sa.Column('valid_at', sa.DateTime(), nullable=True),
    sa.Column('valid_precision', sa.String(length=8), nullable=True),
    sa.Column('invalid_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expired_at', sa.DateTime(), nullable=True),
    sa.Column('superseded_by', sa.String(length=36), nullable=True),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('agent_id', sa.String(length=255), nullable=True),
    sa.Column('session_id', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('graph_facts', schema=None) as batch_op:
        batch_op.create_index('ix_graph_facts_object', ['object_id'], unique=False)
        batch_op.create_index('ix_graph_facts_subject', ['subject_id', 'predicate'], unique=False)
        batch_op.create_index('ix_graph_facts_user', ['user_id'], unique=False)

    op.create_table('graph_mentions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('episode_id', sa.String(length=36), nullable=False),
    sa.Column('entity_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('graph_mentions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_graph_mentions_entity_id'), ['entity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_graph_mentions_episode_id'), ['episode_id'], unique=False)

    op.create_table('graph_merges',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('kept_id', sa.String(length=36), nullable=False),
    sa.Column('merged_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('moved', sa.JSON(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('undone_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('graph_merges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_graph_merges_kept_id'), ['kept_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_graph_merges_merged_id'), ['merged_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('graph_merges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_graph_merges_merged_id'))
        batch_op.drop_index(batch_op.f('ix_graph_merges_kept_id'))

    op.drop_table('graph_merges')
    with op.batch_alter_table('graph_mentions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_graph_mentions_episode_id'))
        batch_op.drop_index(batch_op.f('ix_graph_mentions_entity_id'))

    op.drop_table('graph_mentions')
    with op.batch_alter_table('graph_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_graph_facts_user')
        batch_op.drop_index('ix_graph_facts_subject')
        batch_op.drop_index('ix_graph_facts_object')

    op.drop_table('graph_facts')
    with op.batch_alter_table('graph_episodes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_graph_episodes_note_id'))

    op.drop_table('graph_episodes')
    with op.batch_alter_table('graph_entities', schema=None) as batch_op:
        batch_op.drop_index('ix_graph_entities_user_norm')
        batch_op.drop_index('ix_graph_entities_session_norm')
        batch_op.drop_index('ix_graph_entities_agent_norm')

    op.drop_table('graph_entities')
