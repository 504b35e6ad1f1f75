"""LLM note construction and evolution, A-MEM style but correct: the prompt, the JSON schema and the
validation of what a model answers. Pure: no model, no store (api/ runs the call and applies it).

One call per new note returns its keywords (≥3), tags (≥3) and a one-line context, and for each of
its nearest neighbours whether to link to it (and how) and, optionally, a new context and new tags
for that neighbour. Never its content: the schema has no field for it. Neighbours are shown to the
model under short labels ("N1", "N2", ...) constrained by an enum and mapped back to note ids here —
A-MEM's code indexes neighbours by position in a local list and updates the wrong notes.

Given the note's grounding (``memory.grounding``) the schema is grounded by construction: keywords
and tags are enums of the note's own words, the context a run of its consecutive words, so a
constrained decoder cannot answer with anything the validation would reject as ungrounded.

Usage::

    labels = {"N1": neighbour.id}
    messages = enrichment_messages(note, [(neighbour, 0.71)], labels)
    schema = enrichment_schema(list(labels), cfg, note_grounding(note.content), {"N1": note_grounding(neighbour.content)})
    raw = engine.complete_json(messages, schema)
    plan = parse_enrichment(raw, note.content, labels, {neighbour.id: neighbour}, cfg)   # or EnrichmentInvalid
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from memory.config import EnrichConfig
from memory.grounding import AREAS, GROUPS, KINDS, Grounding, context_pattern, grounding
from memory.linking import LINK_KINDS, RELATED
from memory.stopwords import STOPWORDS
from memory.types import Note

_TAG = re.compile(r"[^a-z0-9]+")
_SPACE = re.compile(r"\s+")
SYSTEM = (
    "You organise a personal memory of notes (a Zettelkasten). For the NEW note give: keywords = the words "
    "or phrases of the note that say most about it, chosen from the ones the schema offers; tags = the "
    "note's life area, then what kind of memory it is, then its topic word; context = one short sentence, in "
    "your own words, saying what the NEW note tells about the user. Then, for each NEIGHBOUR note, decide "
    "link = true if it is about the same thing as the new note, with kind = related, contradicts (it says "
    "something the new note makes untrue) or derived_from; and give new_context / new_tags for the neighbour "
    "only if the new note changes how it should be understood, else null. Never rewrite a note's text."
)
# No worked example: SmolLM2-135M copied the example's words into every answer. The schema offers
# only the note's own words as keywords and topic tags (memory.grounding), so there is nothing
# else to copy, and the neighbour labels are an enum too.
# Words of the schema and prompt that a confused model echoes instead of answering.
_ECHOES = frozenset({"note", "notes", "new", "neighbour", "neighbours", "keywords", "keyword", "tags", "tag",
                     "context", "link", "kind", "type", "array", "items", "string", "object", "null", "true",
                     "false", "related", "contradicts"})
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


def note_grounding(content: str, cfg: EnrichConfig | None = None) -> Grounding:
    """The candidate keywords and topic tags of a note, as ``enrichment_schema`` offers them."""
    cfg = cfg or EnrichConfig()
    return grounding(content, cfg.max_candidates, cfg.max_term_chars, _ECHOES)


def groundable(ground: Grounding) -> bool:
    """Whether a note has enough words of its own for three keywords and a topic tag."""
    return bool(ground.keyword_groups) and bool(ground.topics)


def enrichment_schema(labels: list[str], cfg: EnrichConfig | None = None, ground: Grounding | None = None,
                      neighbour_grounds: dict[str, Grounding] | None = None) -> dict[str, Any]:
    """The JSON schema of one answer; neighbour labels are an enum, so a constrained decoder cannot
    name a note that was not shown. With ``ground`` (a groundable note's candidates) keywords and
    tags are enums too: the first three keywords one from each disjoint candidate group, the tags
    an area, a kind and a topic word — three distinct, grounded terms of each by construction —
    and the context a pattern naming a word of the note.
    A neighbour's new context is likewise a run of that neighbour's words (``neighbour_grounds``).
    Usage: ``enrichment_schema(["N1", "N2"], cfg, note_grounding(note.content))``."""
    cfg = cfg or EnrichConfig()
    words = {"type": "string", "minLength": 2, "maxLength": cfg.max_term_chars}
    keywords: dict[str, Any] = {"type": "array", "items": words, "minItems": 3, "maxItems": cfg.max_keywords}
    tags: dict[str, Any] = {"type": "array", "items": words, "minItems": 3, "maxItems": cfg.max_tags}
    new_tag: dict[str, Any] = words
    context: dict[str, Any] = {"type": "string", "minLength": 8, "maxLength": cfg.max_context_chars}
    if ground is not None and groundable(ground):
        # the pattern bounds the length itself (xgrammar ignores min/maxLength beside a pattern)
        context = {"type": "string", "pattern": context_pattern(ground)}
        # Exactly one keyword per group and one tag per facet: more items only gave a small model
        # room to repeat itself and spend the token budget the context needs.
        keywords = {"type": "array", "prefixItems": [{"enum": g} for g in ground.keyword_groups],
                    "items": False, "minItems": GROUPS}
        facets = [list(AREAS), list(KINDS), ground.topics]
        new_tag = {"enum": [t for facet in facets for t in facet]}
        tags = {"type": "array", "prefixItems": [{"enum": f} for f in facets], "items": False,
                "minItems": len(facets)}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "keywords": keywords,
            "tags": tags,
            "context": context,
        },
        "required": ["keywords", "tags", "context"],
    }
    if labels:
        # One decision per neighbour, in the order shown: the i-th item can only name the i-th label,
        # so no neighbour is decided twice (the grammar does not enforce uniqueness otherwise).
        grounds = neighbour_grounds or {}
        decisions = [_decision(label, new_tag, cfg, grounds.get(label)) for label in labels]
        schema["properties"]["neighbours"] = {"type": "array", "maxItems": len(labels), "items": False,
                                              "prefixItems": decisions}
        schema["required"].append("neighbours")
    return schema


def _decision(label: str, new_tag: dict[str, Any], cfg: EnrichConfig, ground: Grounding | None) -> dict[str, Any]:
    new_context: dict[str, Any] = {"type": ["string", "null"], "maxLength": cfg.max_context_chars}
    if ground is not None and ground.words:
        new_context = {"anyOf": [{"type": "null"}, {"type": "string", "pattern": context_pattern(ground)}]}
    return {
        "type": "object",
        "properties": {
            "note": {"type": "string", "enum": [label]},
            "link": {"type": "boolean"},
            "kind": {"type": "string", "enum": sorted(LINK_KINDS)},
            "new_context": new_context,
            "new_tags": {"anyOf": [{"type": "null"}, {"type": "array", "items": new_tag, "maxItems": cfg.max_tags}]},
        },
        "required": ["note", "link", "kind", "new_context", "new_tags"],
    }


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
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


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
            tags = _evolved_tags(current.tags, _terms(item["new_tags"], cfg.max_tags, cfg.max_term_chars, slug=True),
                                 cfg.max_tags)
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


def _evolved_tags(current: list[str], proposed: list[str], limit: int) -> list[str]:
    """A neighbour's tags gain the model's new ones (up to ``limit`` topic tags); none is taken
    away: a small model that names one tag must not strip a note of the others, and tags Engram
    set itself ("role:user") are not the model's to change."""
    system = [t for t in current if ":" in t]
    topics = [t for t in current if ":" not in t]
    topics += [t for t in proposed if t not in topics and ":" not in t]
    return system + topics[:max(limit, len([t for t in current if ":" not in t]))]


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
