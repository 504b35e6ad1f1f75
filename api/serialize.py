"""Domain objects → JSON-ready dicts for the REST responses (one place, so every route agrees)."""
from __future__ import annotations

from typing import Any

from graph.types import Entity, Fact
from memory.jobs import Job
from memory.types import HistoryEntry, Link, Note
from retrieval.ranking import Hit

_EXPLAIN = ("relevance", "retention", "recency", "dense", "bm25", "speaker_factor")


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


def entity_json(entity: Entity) -> dict[str, Any]:
    return {"id": entity.id, "name": entity.name, "type": entity.type, **entity.scope.as_dict(),
            "summary": entity.summary, "aliases": list(entity.aliases), "attributes": dict(entity.attributes),
            "created_at": entity.created_at, "last_seen_at": entity.last_seen_at}


def fact_json(fact: Fact) -> dict[str, Any]:
    """A fact with its sentence, the sentence rendered with its validity, and both time intervals."""
    return {"id": fact.id, "fact": fact.fact, "rendered": fact.render(), "predicate": fact.predicate,
            "subject": fact.subject_name, "subject_id": fact.subject_id, "object": fact.object_name,
            "object_id": fact.object_id, **fact.scope.as_dict(), "valid_at": fact.valid_at,
            "invalid_at": fact.invalid_at, "created_at": fact.created_at, "expired_at": fact.expired_at,
            "superseded_by": fact.superseded_by, "previous": fact.previous, "current": fact.is_current}


def job_json(job: Job) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "note_id": job.note_id, "state": job.state, "attempts": job.attempts,
            "max_attempts": job.max_attempts, "next_run_at": job.next_run_at, "last_error": job.last_error,
            "result": job.result, "created_at": job.created_at, "updated_at": job.updated_at}
