"""Domain objects → JSON-ready dicts for the REST responses (one place, so every route agrees)."""
from __future__ import annotations

from typing import Any

from memory.types import HistoryEntry, Link, Note
from retrieval.ranking import Hit

_EXPLAIN = ("relevance", "retention", "recency", "dense", "bm25")


def note_json(note: Note) -> dict[str, Any]:
    return {
        "id": note.id, **note.scope.as_dict(), "content": note.content, "keywords": note.keywords,
        "tags": note.tags, "context": note.context, "metadata": note.metadata, "event_time": note.event_time,
        "created_at": note.created_at, "last_recalled_at": note.last_recalled_at,
        "recall_count": note.recall_count, "strength": note.strength, "importance": note.importance,
        "archived": note.archived, "links": [link_json(lk) for lk in note.links],
    }


def link_json(link: Link) -> dict[str, Any]:
    return {"source": link.source_id, "target": link.target_id, "kind": link.kind, "weight": link.weight,
            "created_at": link.created_at}


def hit_json(hit: Hit, explain: bool) -> dict[str, Any]:
    out = hit.as_dict()
    if not explain:
        for key in _EXPLAIN:
            out.pop(key, None)
    return out


def history_json(entry: HistoryEntry) -> dict[str, Any]:
    return {"id": entry.id, "note_id": entry.note_id, "action": entry.action, "old": entry.old, "new": entry.new,
            "actor": entry.actor, "at": entry.at}
