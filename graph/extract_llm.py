"""The LLM extractor: entities and facts as JSON from any engine with ``complete_json``.

One call per episode; when the output does not validate, one repair call that shows the model its
error. A second failure is logged, counted in ``stats`` and returned as ``Extraction(error=...)`` —
the episode is still stored by the graph, nothing is dropped silently.

Usage: ``LLMExtractor(local_engine).extract("I moved to Paris last June.", reference_time)``.
"""
from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any

import jsonschema

from graph.dates import resolve_date
from graph.protocols import JsonEngine
from graph.types import USER, ExtractedEntity, ExtractedFact, Extraction
from memory.errors import InvalidTimestamp
from memory.timeutil import to_utc

log = logging.getLogger(__name__)

ENTITY_TYPES = ["person", "place", "organization", "pet", "thing", "event", "value"]
_NULLABLE_TEXT = {"type": ["string", "null"]}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entities": {"type": "array", "items": {
            "type": "object",
            "properties": {"name": {"type": "string", "minLength": 1}, "type": {"type": "string", "enum": ENTITY_TYPES},
                           "role": _NULLABLE_TEXT},
            "required": ["name", "type"]}},
        "facts": {"type": "array", "items": {
            "type": "object",
            "properties": {"subject": {"type": "string", "minLength": 1}, "predicate": {"type": "string", "minLength": 1},
                           "object": {"type": "string", "minLength": 1}, "sentence": {"type": "string", "minLength": 1},
                           "valid_at": _NULLABLE_TEXT, "invalid_at": _NULLABLE_TEXT,
                           "correction": {"type": "boolean"}, "negated": {"type": "boolean"},
                           "corrects": _NULLABLE_TEXT},
            "required": ["subject", "predicate", "object", "sentence"]}},
    },
    "required": ["entities", "facts"],
}
SYSTEM = (
    "You extract a knowledge graph from one chat message. Call the speaker USER. List the entities "
    f"(types: {', '.join(ENTITY_TYPES)}; role = their relation to USER, e.g. sister, if said) and the facts "
    "as subject/predicate/object using entity names or USER. Predicates are snake_case, preferring: lives_in, "
    "works_at, job_title, studies_at, from, has_pet, likes, dislikes, diet, partner, sister, brother, friend. "
    "sentence states the fact in plain English with USER as the speaker. valid_at/invalid_at: when the fact "
    "started/ended, as ISO dates or the phrase used (\"last June\"), else null. correction=true when the "
    "speaker corrects something said before (corrects = the wrong value, if named); negated=true when the fact has ended (\"I left Google\"). "
    "Only facts the message states. Answer with JSON only."
)
# One worked example: small local models copy its shape far more reliably than they follow prose.
_EXAMPLE_OUT = {
    "entities": [{"name": "Lisbon", "type": "place"}, {"name": "Ana", "type": "person", "role": "sister"}],
    "facts": [{"subject": "USER", "predicate": "lives_in", "object": "Lisbon", "sentence": "USER lives in Lisbon",
               "valid_at": "last May", "invalid_at": None},
              {"subject": "Ana", "predicate": "sister", "object": "USER", "sentence": "Ana is the sister of USER",
               "valid_at": None, "invalid_at": None}],
}
EXAMPLE = [{"role": "user", "content": "Reference time: 2024-02-01T09:00:00+00:00\nMessage:\n"
                                       "I moved to Lisbon last May with my sister Ana."},
           {"role": "assistant", "content": json.dumps(_EXAMPLE_OUT)}]
_SYNONYMS = {"lives": "lives_in", "live_in": "lives_in", "moved_to": "lives_in", "resides_in": "lives_in",
             "works_for": "works_at", "employed_at": "works_at", "employed_by": "works_at", "work_at": "works_at",
             "studies": "studies_at", "is_from": "from", "likes_to": "likes", "loves": "likes", "owns_pet": "has_pet"}
_USER_WORDS = {"user", "i", "me", "speaker", "the user", "@user"}


class ExtractionError(ValueError):
    """Model output that is JSON but not a usable extraction."""


class LLMExtractor:
    """Extractor on a ``JsonEngine``; ``stats`` counts calls, repairs and failures. Usage: see module doc."""

    name = "llm"

    def __init__(self, engine: JsonEngine) -> None:
        self._engine = engine
        self.stats = {"episodes": 0, "calls": 0, "repairs": 0, "failures": 0, "ungrounded": 0}

    def extract(self, text: str, reference_time: datetime) -> Extraction:
        """Entities and facts of one episode; ``error`` is set (and counted) when the model fails twice."""
        self.stats["episodes"] += 1
        messages = [{"role": "system", "content": SYSTEM}, *EXAMPLE,
                    {"role": "user", "content": _prompt(text, reference_time)}]
        error = ""
        for attempt in range(2):
            raw: Any = None
            try:
                self.stats["calls"] += 1
                raw = self._engine.complete_json(messages, SCHEMA)
                extraction = parse_extraction(raw, reference_time)
                return self._grounded(extraction, text)
            except Exception as exc:  # engine or validation failure: one repair attempt, then surface it
                error = f"{exc.__class__.__name__}: {exc}"
                if attempt == 0:
                    self.stats["repairs"] += 1
                    messages = [*messages, {"role": "assistant", "content": _dump(raw)},
                                {"role": "user", "content": f"That answer was invalid ({error[:300]}). "
                                                            "Reply with corrected JSON matching the schema."}]
        self.stats["failures"] += 1
        log.warning("LLM extraction failed after a repair attempt: %s", error)
        return Extraction(error=error)


    def _grounded(self, extraction: Extraction, text: str) -> Extraction:
        """Drop what the message does not name (a small model copies the example or invents);
        the drops are counted, and logged, not silent."""
        kept = grounded(extraction, text)
        dropped = len(extraction.facts) - len(kept.facts) + len(extraction.entities) - len(kept.entities)
        if dropped:
            self.stats["ungrounded"] += dropped
            log.info("LLM extraction: dropped %d entities/facts not named in the message", dropped)
        return kept


def grounded(extraction: Extraction, text: str) -> Extraction:
    """Only entities named in ``text`` (any case) and facts between them or the user."""
    lowered = text.lower()
    entities = [e for e in extraction.entities if e.name == USER or e.name.lower() in lowered]
    names = {e.name for e in entities} | {USER}
    facts = [f for f in extraction.facts if f.subject in names and f.object in names]
    used = {USER} & {n for f in facts for n in (f.subject, f.object)}
    entities = [e for e in entities if e.name != USER or used]
    return Extraction(entities=entities, facts=facts, error=extraction.error)


def _prompt(text: str, reference_time: datetime) -> str:
    return f"Reference time: {reference_time.isoformat()}\nMessage:\n{text}"


def parse_extraction(raw: Any, reference_time: datetime) -> Extraction:
    """Validate model output against SCHEMA and convert it. Raises ExtractionError or ValidationError."""
    if not isinstance(raw, dict):
        raise ExtractionError(f"expected a JSON object, got {type(raw).__name__}")
    jsonschema.validate(raw, SCHEMA)
    entities = {_name(e["name"]): ExtractedEntity(_name(e["name"]), e["type"], e.get("role") or None)
                for e in raw["entities"]}
    facts = []
    for f in raw["facts"]:
        subject, obj = _name(f["subject"]), _name(f["object"])
        for end in (subject, obj):
            if end not in entities and end != USER:
                entities[end] = ExtractedEntity(end, "thing")
        facts.append(ExtractedFact(subject, _predicate(f["predicate"]), obj, _sentence(f["sentence"]),
                                   _time(f.get("valid_at"), reference_time), _time(f.get("invalid_at"), reference_time),
                                   bool(f.get("correction")), bool(f.get("negated")), _corrected(f.get("corrects")),
                                   _precision(f.get("valid_at"), reference_time)))
    if any(f.subject == USER or f.object == USER for f in facts):
        entities.setdefault(USER, ExtractedEntity(USER, "person"))
    return Extraction(entities=list(entities.values()), facts=facts)


def _corrected(value: str | None) -> str | None:
    return _name(value) if value and value.strip() else None


def _name(name: str) -> str:
    clean = " ".join(name.split())
    return USER if clean.lower() in _USER_WORDS else clean


def _predicate(predicate: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", predicate.lower()).strip("_")
    return _SYNONYMS.get(slug, slug)


def _sentence(sentence: str) -> str:
    return re.sub(r"\b(?:USER|the user)\b", USER, sentence.strip())


def _time(value: str | None, reference_time: datetime) -> datetime | None:
    if not value:
        return None
    if re.fullmatch(r"\s*(?:19|20)\d{2}\s*", value):
        value = f"{value.strip()}-01-01"
    try:
        return to_utc(value)
    except InvalidTimestamp:
        found = resolve_date(value, reference_time)
        return found.when if found else None


def _precision(value: str | None, reference_time: datetime) -> str | None:
    if not value:
        return None
    text = value.strip()
    if re.fullmatch(r"(?:19|20)\d{2}", text):
        return "year"
    if re.fullmatch(r"\d{4}-\d{2}", text):
        return "month"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", text):
        return "day"
    found = resolve_date(text, reference_time)
    return found.granularity if found else None


def _dump(raw: Any) -> str:
    try:
        return json.dumps(raw)[:2000]
    except (TypeError, ValueError):
        return str(raw)[:2000]
