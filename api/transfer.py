"""Export and import of a scope as JSON lines: one note per line, with its own outgoing links.

The format is the note as stored (id, scope, content, keywords, tags, context, metadata, times,
recall count, strength, importance, archived) so an import restores the forgetting-curve state,
not only the text; vectors are not exported (they are recomputed on import). Access logs and
history are not part of an export. Usage::

    for line in export_lines(mem, Scope(user_id="ann")): out.write(line)
    notes, links = parse_lines(body.splitlines(), mem.config.memory)
    mem.import_notes(notes, links)
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from api.engram import Engram
from memory.config import MemoryConfig
from memory.errors import InvalidInput
from memory.timeutil import to_utc
from memory.types import Link, Note, Scope
from memory.validation import clean_content, clean_importance, clean_metadata, clean_note_id

_PAGE = 500


def export_lines(mem: Engram, scope: Scope) -> Iterator[str]:
    """Every note of ``scope`` (archived too), oldest event first, as JSON lines ending in ``\\n``."""
    offset = 0
    while True:
        page = mem.store.list_notes(scope, True, _PAGE, offset)
        for note in page:
            yield json.dumps(_record(note, mem.links(note.id)), ensure_ascii=False, sort_keys=True) + "\n"
        if len(page) < _PAGE:
            return
        offset += _PAGE


def _record(note: Note, links: list[Link]) -> dict[str, Any]:
    return {
        "id": note.id, **note.scope.as_dict(), "content": note.content, "keywords": note.keywords,
        "tags": note.tags, "context": note.context, "metadata": note.metadata,
        "created_at": note.created_at.isoformat(), "event_time": note.event_time.isoformat(),
        "last_recalled_at": note.last_recalled_at.isoformat() if note.last_recalled_at else None,
        "recall_count": note.recall_count, "strength": note.strength, "importance": note.importance,
        "archived": note.archived,
        "links": [{"target": lk.target_id, "kind": lk.kind, "weight": lk.weight,
                   "created_at": lk.created_at.isoformat()} for lk in links if lk.source_id == note.id],
    }


def parse_lines(lines: Iterable[str], cfg: MemoryConfig, max_notes: int,
                existing: Callable[[list[str]], set[str]] | None = None) -> tuple[list[Note], list[Link]]:
    """Validate every line before anything is written. A link is kept when its target is in the
    import or, through ``existing`` (ids → those present), already in the destination; others are
    dropped. Notes link to earlier notes, so an export imported in chunks, in order, keeps them all."""
    notes: list[Note] = []
    raw_links: list[tuple[str, dict[str, Any]]] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(notes) >= max_notes:
            raise InvalidInput(f"an import holds at most {max_notes} notes")
        try:
            note, links = _parse_record(json.loads(line), cfg)
        except (json.JSONDecodeError, InvalidInput, KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"line {lineno}: {exc}") from exc
        notes.append(note)
        raw_links.extend((note.id, lk) for lk in links)
    ids = [n.id for n in notes]
    if len(set(ids)) != len(ids):
        raise InvalidInput("the same note id appears twice")
    outside = sorted({lk.get("target") for _, lk in raw_links if isinstance(lk.get("target"), str)} - set(ids))
    known = set(ids) | (existing(outside) if existing is not None and outside else set())
    links = [Link(src, lk["target"], str(lk["kind"]), float(lk["weight"]), to_utc(lk["created_at"]))
             for src, lk in raw_links if lk.get("target") in known]
    return notes, links


def _parse_record(rec: Any, cfg: MemoryConfig) -> tuple[Note, list[dict[str, Any]]]:
    if not isinstance(rec, dict):
        raise InvalidInput("each line must be a JSON object")
    strength = float(rec["strength"])
    if not math.isfinite(strength) or strength <= 0:
        raise InvalidInput("strength must be a positive number")
    recalled = rec.get("last_recalled_at")
    links = rec.get("links") or []
    if not isinstance(links, list) or not all(isinstance(lk, dict) for lk in links):
        raise InvalidInput("links must be a list of objects")
    note_id = clean_note_id(rec["id"])
    if len(note_id) > 36:  # the notes.id column's width
        raise InvalidInput(f"note id {note_id!r} is over 36 characters")
    note = Note(
        id=note_id, scope=Scope(rec.get("user_id"), rec.get("agent_id"), rec.get("session_id")),
        content=clean_content(rec["content"], cfg), keywords=_strings(rec.get("keywords")),
        tags=_strings(rec.get("tags")), context=str(rec.get("context") or ""),
        metadata=clean_metadata(rec.get("metadata"), cfg), created_at=to_utc(rec["created_at"]),
        event_time=to_utc(rec["event_time"]), last_recalled_at=to_utc(recalled) if recalled else None,
        recall_count=int(rec.get("recall_count") or 0), strength=strength,
        importance=clean_importance(rec.get("importance"), cfg), archived=bool(rec.get("archived", False)),
    )
    return note, links


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput("keywords and tags must be lists of strings")
    return list(value)
