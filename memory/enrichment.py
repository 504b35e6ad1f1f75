"""LLM note construction and evolution, A-MEM style but correct: the prompt, the JSON schema and the
validation of what a model answers. Pure: no model, no store (api/ runs the call and applies it).

One call per new note returns its keywords (≥3), tags (≥3) and a one-line context, and for each of
its nearest neighbours whether to link to it (and how) and, optionally, a new context and new tags
for that neighbour. Never its content: the schema has no field for it. Neighbours are shown to the
model under short labels ("N1", "N2", ...) constrained by an enum and mapped back to note ids here —
A-MEM's code indexes neighbours by position in a local list and updates the wrong notes.

Usage::

    labels = {"N1": neighbour.id}
    messages = enrichment_messages(note, [(neighbour, 0.71)], labels)
    raw = engine.complete_json(messages, enrichment_schema(list(labels)))
    plan = parse_enrichment(raw, note.content, labels, {neighbour.id: neighbour}, cfg)   # or EnrichmentInvalid
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from memory.config import EnrichConfig
from memory.linking import LINK_KINDS, RELATED
from memory.stopwords import STOPWORDS
from memory.types import Note

_TAG = re.compile(r"[^a-z0-9]+")
_SPACE = re.compile(r"\s+")
SYSTEM = (
    "You organise a personal memory of notes (a Zettelkasten). For the NEW note give: keywords = at least "
    "three salient words or short phrases from it; tags = at least three broad lowercase categories "
    "(e.g. travel, family, work, health); context = one sentence saying what the note is about. "
    "Then, for each NEIGHBOUR note, decide link = true if it is about the same thing as the new note, "
    "with kind = related, contradicts (it says something the new note makes untrue) or derived_from; and "
    "give new_context / new_tags for the neighbour only if the new note changes how it should be "
    "understood, else null. Never rewrite a note's text."
)


# One worked example: small local models copy a shape far more reliably than they follow prose (and
# without it SmolLM2-135M answers with the schema's own words). Its words are checked against the
# note by grounding, so an answer copied from the example is rejected, not stored.
_EXAMPLE_NOTE = ("NEW note (2024-03-02): My daughter starts piano lessons with Mrs Kowalski on Tuesdays.\n"
                 "NEIGHBOUR N1 (2024-01-15): We bought a second-hand piano for the living room."
                 " | context: user on 2024-01-15: about piano | tags: role:user, home")
_EXAMPLE_ANSWER = {"keywords": ["piano lessons", "daughter", "Mrs Kowalski", "Tuesdays"],
                   "tags": ["family", "music", "education"],
                   "context": "The user's daughter takes weekly piano lessons.",
                   "neighbours": [{"note": "N1", "link": True, "kind": "related",
                                   "new_context": "The piano the user's daughter now takes lessons on.",
                                   "new_tags": ["home", "music", "family"]}]}
EXAMPLE = [{"role": "user", "content": _EXAMPLE_NOTE}, {"role": "assistant", "content": json.dumps(_EXAMPLE_ANSWER)}]
# Words of the schema and prompt that a confused model echoes instead of answering.
_ECHOES = {"note", "notes", "new", "neighbour", "neighbours", "keywords", "keyword", "tags", "tag", "context", "link",
           "kind", "type", "array", "items", "string", "object", "null", "true", "false", "related", "contradicts"}
_WORDS = re.compile(r"[^\W_]+")


class EnrichmentInvalid(ValueError):
    """Model output that validates as JSON but breaks a rule the schema cannot state."""


@dataclass(frozen=True)
class NeighbourDecision:
    """What the model decided for one neighbour, by note id."""

    note_id: str
    link: bool
    kind: str
    context: str | None
    tags: list[str] | None


@dataclass(frozen=True)
class Enrichment:
    """A validated answer: the new note's fields and the neighbour decisions."""

    keywords: list[str]
    tags: list[str]
    context: str
    neighbours: list[NeighbourDecision] = field(default_factory=list)


def enrichment_schema(labels: list[str], cfg: EnrichConfig | None = None) -> dict[str, Any]:
    """The JSON schema of one answer; neighbour labels are an enum, so a constrained decoder cannot
    name a note that was not shown. Usage: ``enrichment_schema(["N1", "N2"])``."""
    cfg = cfg or EnrichConfig()
    words = {"type": "string", "minLength": 2, "maxLength": cfg.max_term_chars}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "keywords": {"type": "array", "items": words, "minItems": 3, "maxItems": cfg.max_keywords},
            "tags": {"type": "array", "items": words, "minItems": 3, "maxItems": cfg.max_tags},
            "context": {"type": "string", "minLength": 8, "maxLength": cfg.max_context_chars},
        },
        "required": ["keywords", "tags", "context"],
    }
    if labels:
        schema["properties"]["neighbours"] = {"type": "array", "maxItems": len(labels), "items": {
            "type": "object",
            "properties": {
                "note": {"type": "string", "enum": list(labels)},
                "link": {"type": "boolean"},
                "kind": {"type": "string", "enum": sorted(LINK_KINDS)},
                "new_context": {"type": ["string", "null"], "maxLength": cfg.max_context_chars},
                "new_tags": {"anyOf": [{"type": "null"},
                                       {"type": "array", "items": words, "maxItems": cfg.max_tags}]},
            },
            "required": ["note", "link", "kind", "new_context", "new_tags"],
        }}
        schema["required"].append("neighbours")
    return schema


def enrichment_messages(note: Note, neighbours: list[tuple[Note, float]], labels: dict[str, str]) -> list[dict[str, str]]:
    """The chat messages of one enrichment call; ``labels`` maps "N1".. to the neighbours' ids."""
    by_id = {n.id: n for n, _ in neighbours}
    lines = [f"NEW note ({note.event_time:%Y-%m-%d}): {_clip(note.content, 600)}"]
    for label, note_id in labels.items():
        other = by_id[note_id]
        lines.append(f"NEIGHBOUR {label} ({other.event_time:%Y-%m-%d}): {_clip(other.content, 300)}"
                     f" | context: {other.context} | tags: {', '.join(other.tags)}")
    if not labels:
        lines.append("(no neighbours)")
    return [{"role": "system", "content": SYSTEM}, *EXAMPLE, {"role": "user", "content": "\n".join(lines)}]


def repair_request(error: str) -> dict[str, str]:
    """The follow-up message of the one repair attempt."""
    return {"role": "user", "content": f"That answer was not usable ({error[:300]}). "
                                       "Reply again with corrected JSON only."}


def parse_enrichment(raw: Any, content: str, labels: dict[str, str], neighbours: dict[str, Note],
                     cfg: EnrichConfig | None = None) -> Enrichment:
    """Check an answer beyond its schema and map labels to note ids. Raises EnrichmentInvalid.

    Terms are trimmed, one-lined and de-duplicated case-insensitively; keywords must be grounded in
    the note (a word of each occurs in its text) and tags must not echo the schema's own words —
    ≥3 of each must remain. The context is one line naming something the note says, not a
    neighbour's context copied. A neighbour appears at most once; its "new" context or tags equal
    to its current ones are no change (None).
    """
    cfg = cfg or EnrichConfig()
    if not isinstance(raw, dict):
        raise EnrichmentInvalid(f"expected a JSON object, got {type(raw).__name__}")
    text = _stems(content)
    keywords = [k for k in _terms(raw.get("keywords"), cfg.max_keywords, cfg.max_term_chars, slug=False)
                if _stems(k) & text]
    tags = [t for t in _terms(raw.get("tags"), cfg.max_tags, cfg.max_term_chars, slug=True) if t not in _ECHOES]
    if len(keywords) < 3 or len(tags) < 3:
        raise EnrichmentInvalid(f"need at least 3 distinct keywords found in the note and 3 tags, got {keywords} and {tags}")
    context = _line(raw.get("context"), cfg.max_context_chars)
    if context is None or len(context) < 8 or not _stems(context) & text:
        raise EnrichmentInvalid("context must be one line about what the note says")
    if any(context == n.context for n in neighbours.values()):
        raise EnrichmentInvalid("context copies a neighbour's context")
    decisions = _neighbours(raw.get("neighbours") or [], labels, neighbours, cfg)
    return Enrichment(keywords, tags, context, decisions)


def _neighbours(items: Any, labels: dict[str, str], notes: dict[str, Note], cfg: EnrichConfig) -> list[NeighbourDecision]:
    if not isinstance(items, list):
        raise EnrichmentInvalid("neighbours must be a list")
    out: list[NeighbourDecision] = []
    seen: set[str] = set()
    for item in items:
        label = item.get("note") if isinstance(item, dict) else None
        if label not in labels:
            raise EnrichmentInvalid(f"unknown neighbour {label!r}; shown were {sorted(labels)}")
        if label in seen:
            raise EnrichmentInvalid(f"neighbour {label} decided twice")
        seen.add(label)
        kind = item.get("kind")
        if kind not in LINK_KINDS:
            raise EnrichmentInvalid(f"link kind must be one of {sorted(LINK_KINDS)}")
        current = notes[labels[label]]
        context = _line(item.get("new_context"), cfg.max_context_chars)
        tags = None
        if item.get("new_tags") is not None:
            tags = _keep_system_tags(current.tags, _terms(item["new_tags"], cfg.max_tags, cfg.max_term_chars, slug=True))
        out.append(NeighbourDecision(
            current.id, bool(item.get("link")), kind if item.get("link") else RELATED,
            context if context and context != current.context else None,
            tags if tags and tags != current.tags else None))
    return out


def _terms(value: Any, limit: int, max_chars: int, *, slug: bool) -> list[str]:
    if not isinstance(value, list):
        raise EnrichmentInvalid("keywords and tags must be lists of strings")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise EnrichmentInvalid("keywords and tags must be strings")
        term = _SPACE.sub(" ", item).strip().lower()
        if slug:
            term = _TAG.sub("-", term).strip("-")
        if 2 <= len(term) <= max_chars and term not in out:
            out.append(term)
    return out[:limit]


def _line(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise EnrichmentInvalid("a context must be a string")
    line = _SPACE.sub(" ", value).strip()
    return line[:limit] if line else None


def _keep_system_tags(current: list[str], proposed: list[str]) -> list[str]:
    """The model may re-categorise a neighbour, but tags Engram set itself ("role:user") stay."""
    system = [t for t in current if ":" in t]
    return system + [t for t in proposed if t not in system and ":" not in t]


def _stems(text: str) -> set[str]:
    """Content words cut to 4 letters ("flats" ~ "flat", "bakeries" ~ "bakery"); stopwords, short
    words and the schema's echoes left out."""
    return {w[:4] for w in _WORDS.findall(text.lower()) if len(w) > 2 and w not in _ECHOES and w not in STOPWORDS}


def _clip(text: str, chars: int) -> str:
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= chars else text[: chars - 1] + "…"


def dump(raw: Any) -> str:
    """Model output as text for a repair prompt (never raises)."""
    try:
        return json.dumps(raw)[:2000]
    except (TypeError, ValueError):
        return str(raw)[:2000]
