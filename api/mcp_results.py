"""JSON shapes of what the MCP tools return: notes, search hits and graph facts as plain dicts.

Every value is JSON-serialisable (times as ISO-8601 strings), so a tool result can be sent both as
text and as MCP structured content. A backend that already answers with dicts (a remote SDK
client) passes through unchanged. Usage: ``note_json(mem.get(note_id))``.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from memory.forgetting import retention


def note_json(note: Any, now: datetime | None = None) -> dict[str, Any]:
    """A note with its scope, timestamps, forgetting-curve state (retention now) and links."""
    if isinstance(note, Mapping):
        return dict(note)
    when = now or datetime.now(UTC)
    elapsed = (when - note.last_touched).total_seconds() / 86400.0
    return {
        "id": note.id, **note.scope.as_dict(), "content": note.content, "metadata": note.metadata,
        "keywords": note.keywords, "tags": note.tags, "context": note.context,
        "event_time": _iso(note.event_time), "created_at": _iso(note.created_at),
        "last_recalled_at": _iso(note.last_recalled_at), "recall_count": note.recall_count,
        "strength": note.strength, "retention": retention(elapsed, note.strength),
        "importance": note.importance, "archived": note.archived,
        "links": [link_json(link) for link in note.links],
    }


def hit_json(hit: Any) -> dict[str, Any]:
    """A search hit: the score and its parts (relevance, retention, recency, dense, bm25) plus
    the note's creation time and links, so an agent can follow them."""
    if isinstance(hit, Mapping):
        return dict(hit)
    note = getattr(hit, "note", None)
    if note is None:  # a hit that is not a note (a graph fact) describes itself
        return hit.as_dict()
    return {**hit.as_dict(), "created_at": _iso(note.created_at), "links": [link_json(link) for link in note.links]}


def link_json(link: Any) -> dict[str, Any]:
    if isinstance(link, Mapping):
        return dict(link)
    return {"source": link.source_id, "target": link.target_id, "kind": link.kind, "weight": link.weight}


def fact_json(fact: Any, score: float | None = None) -> dict[str, Any]:
    """A graph fact: subject, predicate, object, the sentence with its validity, and both time
    axes (world: valid_at/invalid_at; system: created_at/expired_at)."""
    if isinstance(fact, Mapping):
        return dict(fact) if score is None else {**fact, "score": score}
    out = {
        "id": fact.id, **fact.scope.as_dict(), "subject": fact.subject_name, "predicate": fact.predicate,
        "object": fact.object_name, "fact": fact.fact, "text": str(fact), "current": fact.is_current,
        "valid_at": _iso(fact.valid_at), "invalid_at": _iso(fact.invalid_at),
        "created_at": _iso(fact.created_at), "expired_at": _iso(fact.expired_at),
        "superseded_by": fact.superseded_by, "episode_ids": list(fact.episode_ids),
    }
    if score is not None:
        out["score"] = score
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
