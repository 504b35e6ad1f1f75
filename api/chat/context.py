"""Context assembly: each retrieved note or fact becomes one chunk of stable text.

A chunk's text depends only on the note (its event date, its role and its content) — never on
its rank, score or neighbours — so the same note gives the same tokens and therefore the same
chunk-store key on every turn. Chunks are chosen best first under a token budget, then put in a
stable order (facts by text, then notes by event time), so two turns that retrieve mostly the
same memories build mostly the same prompt.

Usage::

    chunks = assemble(mem.search(message, user_id="ann"), engine.count_tokens, budget=600)
    texts = [c.text for c in chunks]
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.graph_search import FactHit
from memory.types import Note
from retrieval.ranking import Hit

NOTE, FACT = "note", "fact"


@dataclass(frozen=True)
class ContextChunk:
    """One memory in the prompt: ``text`` is what the model reads, ``content`` what the caller sees."""

    kind: str  # "note" or "fact"
    id: str
    text: str
    content: str
    n_tokens: int
    score: float
    retention: float | None
    event_time: datetime | None
    note_ids: tuple[str, ...] = ()  # a fact's source notes
    retrieved: bool = True  # False: carried over from an earlier turn of the conversation (api.chat.window)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "content": self.content, "score": round(self.score, 4),
                "retention": None if self.retention is None else round(self.retention, 4),
                "event_time": self.event_time.isoformat() if self.event_time else None,
                "tokens": self.n_tokens, "note_ids": list(self.note_ids), "retrieved": self.retrieved}


def note_text(note: Note) -> str:
    """The chunk text of a note, e.g. ``"- [2026-05-03] I moved to Lisbon in May\\n"``."""
    who = "(assistant said) " if note.metadata.get("role") == "assistant" else ""
    return f"- [{note.event_time:%Y-%m-%d}] {who}{_one_line(note.content)}\n"


def fact_text(content: str) -> str:
    """The chunk text of a fact rendered with its validity."""
    return f"- (fact) {_one_line(content)}\n"


def assemble(found: Sequence[Hit | FactHit], count_tokens: Callable[[str], int], budget: int) -> list[ContextChunk]:
    """Best-first selection of ``found`` (search order) under ``budget`` tokens, in stable order."""
    chosen: list[ContextChunk] = []
    used = 0
    for hit in found:
        chunk = _chunk_of(hit, count_tokens)
        if chunk is None or used + chunk.n_tokens > budget:
            continue  # a smaller memory further down may still fit
        chosen.append(chunk)
        used += chunk.n_tokens
    return sorted(chosen, key=_stable_key)


def _chunk_of(hit: Hit | FactHit, count_tokens: Callable[[str], int]) -> ContextChunk | None:
    if isinstance(hit, Hit):
        text = note_text(hit.note)
        return ContextChunk(NOTE, hit.id, text, hit.content, count_tokens(text), hit.score, hit.retention,
                            hit.event_time)
    if isinstance(hit, FactHit):
        text = fact_text(hit.content)
        return ContextChunk(FACT, hit.id, text, hit.content, count_tokens(text), hit.score, None,
                            hit.fact.valid_at, tuple(hit.note_ids))
    return None


def _stable_key(chunk: ContextChunk) -> tuple:
    # Facts first (they change least), then notes oldest first: a new note lands at the end.
    if chunk.kind == FACT:
        return (0, "", chunk.text, chunk.id)
    return (1, chunk.event_time.isoformat() if chunk.event_time else "", chunk.id, "")


def _one_line(text: str) -> str:
    return " ".join(text.split())
