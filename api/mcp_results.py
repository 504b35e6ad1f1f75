"""JSON shapes of what the MCP tools return: the REST API's shapes (``api.serialize``), so a tool
answers alike over an embedded memory and over the service, plus what an agent needs on top: a
note's retention now, a hit's creation time and links, a fact's score.
Usage: ``note_json(mem.get(note_id))``.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api import serialize
from memory.forgetting import retention


def note_json(note: Any, now: datetime | None = None) -> dict[str, Any]:
    """A note with its scope, timestamps, links and forgetting-curve state (``retention`` at ``now``)."""
    when = now or datetime.now(UTC)
    elapsed = (when - note.last_touched).total_seconds() / 86400.0
    return {**serialize.note_json(note), "retention": retention(elapsed, note.strength)}


def hit_json(hit: Any) -> dict[str, Any]:
    """A search hit: the score and its parts (relevance, retention, recency, dense, bm25, speaker_factor) plus the
    note's creation time and links, so an agent can follow them."""
    note = hit.note
    return {**serialize.hit_json(hit, explain=True), "created_at": note.created_at,
            "links": [serialize.link_json(link) for link in note.links]}


def fact_json(fact: Any, score: float | None = None) -> dict[str, Any]:
    """A graph fact (subject, predicate, object, the sentence rendered with its validity, world and
    system intervals, ``current``) with its search score when it has one."""
    out = serialize.fact_json(fact)
    return out if score is None else {**out, "score": score}
