"""Conversion between SQL rows and domain types (kept apart so the store stays about queries)."""
from __future__ import annotations

from typing import Any

from memory.schema import HistoryRow, LinkRow, NoteRow
from memory.types import HistoryEntry, Link, Note, Scope


def note_from_row(row: Any) -> Note:
    """A Note from its ORM row or a plain row of its columns (links are attached separately)."""
    return Note(
        id=row.id,
        scope=Scope(user_id=row.user_id, agent_id=row.agent_id, session_id=row.session_id),
        content=row.content,
        keywords=list(row.keywords or []),
        tags=list(row.tags or []),
        context=row.context or "",
        metadata=dict(row.meta or {}),
        created_at=row.created_at,
        event_time=row.event_time,
        last_recalled_at=row.last_recalled_at,
        recall_count=row.recall_count,
        strength=row.strength,
        importance=row.importance,
        archived=row.archived,
    )


def link_from_row(row: LinkRow) -> Link:
    return Link(row.source_id, row.target_id, row.kind, row.weight, row.created_at)


def history_from_row(row: HistoryRow) -> HistoryEntry:
    return HistoryEntry(row.id, row.note_id, row.action, row.old, row.new, row.actor, row.at)


def snapshot(row: NoteRow) -> dict[str, Any]:
    """The audited fields of a stored note, JSON-ready, for history old/new values."""
    return _snapshot(row.content, row.keywords, row.tags, row.context, row.meta, row.importance, row.archived,
                     row.event_time)


def note_snapshot(note: Note) -> dict[str, Any]:
    """The same audited fields, from a note not yet stored."""
    return _snapshot(note.content, note.keywords, note.tags, note.context, note.metadata, note.importance,
                     note.archived, note.event_time)


def _snapshot(content: str, keywords: Any, tags: Any, context: str, metadata: Any, importance: float,
              archived: bool, event_time: Any) -> dict[str, Any]:
    return {
        "content": content,
        "keywords": list(keywords or []),
        "tags": list(tags or []),
        "context": context,
        "metadata": dict(metadata or {}),
        "importance": importance,
        "archived": archived,
        "event_time": event_time.isoformat() if event_time else None,
    }


def filter_record(row: NoteRow) -> dict[str, Any]:
    """The fields a metadata filter may test (see memory.filters)."""
    return {
        "metadata": row.meta or {},
        "event_time": row.event_time,
        "created_at": row.created_at,
        "tags": list(row.tags or []),
        "keywords": list(row.keywords or []),
        "importance": row.importance,
        "recall_count": row.recall_count,
        "content": row.content,
    }
