"""SQL tables of the memory layer (SQLAlchemy 2.0). Portable: SQLite by default, PostgreSQL by URL.

Times are stored as naive UTC (both backends agree on that) and come back timezone-aware.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from memory.sqltypes import UTCDateTime

ID_LEN = 36
SCOPE_LEN = 255
KEY_LEN = 255  # idempotency keys


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class NoteRow(Base):
    __tablename__ = "notes"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(SCOPE_LEN))
    agent_id: Mapped[str | None] = mapped_column(String(SCOPE_LEN))
    session_id: Mapped[str | None] = mapped_column(String(SCOPE_LEN))
    content: Mapped[str] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    context: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    event_time: Mapped[datetime] = mapped_column(UTCDateTime)
    last_recalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recall_count: Mapped[int] = mapped_column(Integer, default=0)
    strength: Mapped[float] = mapped_column(Float)
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # Deferred: only index rebuilds read the vector; every other read would drag 1.5 kB along.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    embed_model: Mapped[str | None] = mapped_column(String(200), nullable=True)

    __table_args__ = (
        Index("ix_notes_user", "user_id", "archived"),
        Index("ix_notes_agent", "agent_id", "archived"),
        Index("ix_notes_session", "session_id", "archived"),
        Index("ix_notes_event_time", "event_time"),
    )


# The predicate of the partial index ``ix_links_contradicted``, as SQL text for queries too.
CONTRADICTS_ONLY = "kind = 'contradicts'"


class LinkRow(Base):
    __tablename__ = "links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # no index of its own: uq_link's index starts with source_id and serves every lookup by it
    # (the note's links, the cascade on delete); a second one cost a B-tree insert per link
    source_id: Mapped[str] = mapped_column(String(ID_LEN), ForeignKey("notes.id", ondelete="CASCADE"))
    target_id: Mapped[str] = mapped_column(String(ID_LEN), ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    weight: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("source_id", "target_id", "kind", name="uq_link"),
        # Every search asks which of its ~65 candidates a newer note contradicts. Through the
        # target_id index that read every link of those notes (~5 each, nearly all "related");
        # this index holds only the rare contradicts links. Queries must spell the kind as a
        # literal (``CONTRADICTS_ONLY``): SQLite uses a partial index only when it can see that
        # the query's WHERE implies the index's, which it cannot of a bound parameter. It covers
        # the query: with target_id alone, SQLite's planner (no statistics) rated it the same as
        # ix_links_target_id and took whichever came first in the schema, which changed when a
        # bulk ingest built that one again (memory/deferred_indexes.py).
        Index("ix_links_contradicted", "target_id", "kind", "source_id", sqlite_where=text(CONTRADICTS_ONLY),
              postgresql_where=text(CONTRADICTS_ONLY)),
    )


class AccessRow(Base):
    __tablename__ = "accesses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    note_id: Mapped[str] = mapped_column(String(ID_LEN), ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    query: Mapped[str | None] = mapped_column(Text, nullable=True)
    retention: Mapped[float] = mapped_column(Float)
    strength_after: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class HistoryRow(Base):
    """Audit log. No foreign key: a deleted note's history outlives it."""

    __tablename__ = "history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    note_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    action: Mapped[str] = mapped_column(String(16))
    old: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    new: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChangeRow(Base):
    """Monotonic change feed: derived indexes catch up by replaying rows after their last seq."""

    __tablename__ = "changes"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    note_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    op: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Which writer (one Engram instance) made the change: its own follower skips it.
    origin: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True)


class IdempotencyRow(Base):
    """An add made under a client's idempotency key: a retry of the same request gets these notes
    back instead of storing them twice. Written in the add's own transaction."""

    __tablename__ = "idempotency"

    key: Mapped[str] = mapped_column(String(KEY_LEN), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the request, hex
    note_ids: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JobRow(Base):
    """A durable unit of enrichment (graph extraction, LLM construction...). Claimed with a lease so
    a crashed worker's job becomes claimable again; no foreign key, so a job outlives its note and
    its outcome stays visible."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    note_id: Mapped[str | None] = mapped_column(String(ID_LEN), nullable=True, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # what a done job changed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_jobs_claim", "state", "next_run_at"),)
