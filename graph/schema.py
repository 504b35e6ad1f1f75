"""SQL tables of the temporal graph (SQLAlchemy 2.0), on their own metadata beside memory's tables.

Portable like memory/schema.py: naive UTC datetimes in the database, aware UTC in Python, JSON
columns, embeddings as float32 bytes. Facts carry four times: ``valid_at``/``invalid_at`` (when the
fact held in the world) and ``created_at``/``expired_at`` (when Engram learned and retired it).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from memory.sqltypes import UTCDateTime

ID_LEN = 36
SCOPE_LEN = 255
NAME_LEN = 300


class GraphBase(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class _Scoped:
    user_id: Mapped[str | None] = mapped_column(String(SCOPE_LEN))
    agent_id: Mapped[str | None] = mapped_column(String(SCOPE_LEN))
    session_id: Mapped[str | None] = mapped_column(String(SCOPE_LEN))


class EpisodeRow(_Scoped, GraphBase):
    """One ingested message or note; ``note_id`` links back to the Zettelkasten."""

    __tablename__ = "graph_episodes"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    note_id: Mapped[str | None] = mapped_column(String(ID_LEN), index=True)
    content: Mapped[str] = mapped_column(Text)
    reference_time: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    extractor: Mapped[str] = mapped_column(String(64))
    # Extraction failures are recorded, never dropped: the episode is stored either way.
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class EntityRow(_Scoped, GraphBase):
    __tablename__ = "graph_entities"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    norm_name: Mapped[str] = mapped_column(String(NAME_LEN))
    type: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text, default="")
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    merged_into: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True)

    __table_args__ = (
        Index("ix_graph_entities_user_norm", "user_id", "norm_name"),
        Index("ix_graph_entities_agent_norm", "agent_id", "norm_name"),
        Index("ix_graph_entities_session_norm", "session_id", "norm_name"),
    )


class FactRow(_Scoped, GraphBase):
    """An edge subject --predicate--> object. Closed by contradiction, never deleted."""

    __tablename__ = "graph_facts"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(ID_LEN))
    object_id: Mapped[str] = mapped_column(String(ID_LEN))
    predicate: Mapped[str] = mapped_column(String(64))
    fact: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    episode_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    valid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    valid_precision: Mapped[str | None] = mapped_column(String(8), nullable=True)  # "year", "month", "day"
    invalid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    superseded_by: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True)

    __table_args__ = (
        Index("ix_graph_facts_subject", "subject_id", "predicate"),
        Index("ix_graph_facts_object", "object_id"),
        Index("ix_graph_facts_user", "user_id"),
    )


class MentionRow(GraphBase):
    """Which entities an episode mentions (Graphiti's episodic edges)."""

    __tablename__ = "graph_mentions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    episode_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    entity_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)


class MergeRow(GraphBase):
    """Provenance of an entity merge: enough to undo it exactly."""

    __tablename__ = "graph_merges"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    kept_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    merged_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    reason: Mapped[str] = mapped_column(String(200))
    # {"subject": [fact ids re-pointed], "object": [...], "mentions": [mention ids], "aliases": [...]}
    moved: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
