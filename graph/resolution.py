"""Entity resolution: is this mention an entity we already know?

Stages, cheapest and surest first, each only over candidates whose type and role are compatible:
1. exact normalised name or alias — never behind an embedding threshold (Graphiti #1734);
2. acronym ("NYU" ↔ "New York University");
3. fuzzy string ratio (rapidfuzz), skipped for short or low-entropy names, where one edit is a
   different name ("Jon"/"Jan", "AAA"/"AAB"); values (counts, durations) stop after stage 1;
4. cosine of name embeddings (not for people: a person's name carries no meaning to embed);
5. optionally an LLM, only for the single best near-miss of stages 3–4.
Two entities with the same name but different roles ("my sister Emma", "my colleague Emma") are
incompatible, so they are never merged blindly; a bare "Emma" goes to the most recently seen one.

Usage: ``resolve_entity(ExtractedEntity("NYU", "organization"), candidates)``.
"""
from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from rapidfuzz import fuzz, process

from graph.protocols import JsonEngine
from graph.types import Entity, ExtractedEntity

log = logging.getLogger(__name__)

GENERIC_TYPES = {"entity", "thing"}
# Values ("4", "8 months", "$420") are the same only when written the same: "3" and "4" embed
# alike and "8 months"/"9 months" differ by one edit, yet a count that went from 3 to 4 is news.
EXACT_ONLY = {"value"}
FUZZY_THRESHOLD = 90.0
COSINE_THRESHOLD = 0.85
MIN_FUZZY_LEN = 6
MIN_ENTROPY = 1.5
_CONNECTORS = {"of", "the", "and", "for", "de", "&", "at", "in"}
_SAME_SCHEMA = {"type": "object", "properties": {"same": {"type": "boolean"}}, "required": ["same"]}


@dataclass(frozen=True)
class Candidate:
    """A known entity and its name embedding (None when there is no embedder)."""

    entity: Entity
    vector: np.ndarray | None = None


@dataclass(frozen=True)
class Match:
    """Which known entity a mention resolved to, by which stage, with what score."""

    entity_id: str
    stage: str
    score: float


def normalise(name: str) -> str:
    """Lower case, punctuation dropped, spaces collapsed, a leading "the" dropped."""
    text = re.sub(r"[^\w@&'\s-]", " ", name.lower()).replace("'s ", " ")
    text = " ".join(text.split())
    return text[4:] if text.startswith("the ") else text


def acronym(name: str) -> str:
    """Initials of the significant words: "New York University" → "NYU"."""
    words = [w for w in re.split(r"[\s-]+", name) if w and w.lower() not in _CONNECTORS]
    return "".join(w[0] for w in words).upper()


def is_acronym_of(short: str, long: str) -> bool:
    """True when ``short`` is written in capitals and spells the initials of ``long``."""
    s = short.replace(".", "").strip()
    return 2 <= len(s) <= 8 and s.isupper() and len(long.split()) >= 2 and acronym(long) == s


def low_entropy(norm: str) -> bool:
    """Graphiti's guard: too short or too repetitive for fuzzy matching to mean anything."""
    compact = norm.replace(" ", "")
    if len(compact) < MIN_FUZZY_LEN:
        return True
    counts = Counter(compact)
    entropy = -sum(c / len(compact) * math.log2(c / len(compact)) for c in counts.values())
    return entropy < MIN_ENTROPY


def compatible(mention: ExtractedEntity, entity: Entity) -> bool:
    """Types agree (or one is generic) and roles do not conflict."""
    types_ok = mention.type == entity.type or mention.type in GENERIC_TYPES or entity.type in GENERIC_TYPES
    role = entity.attributes.get("role")
    return types_ok and not (mention.role and role and mention.role != role)


def resolve_entity(mention: ExtractedEntity, candidates: Sequence[Candidate], vector: np.ndarray | None = None,
                   llm: JsonEngine | None = None) -> Match | None:
    """The known entity ``mention`` refers to, or None for a new one. Usage: see module doc."""
    return EntityIndex(candidates).resolve(mention, vector, llm)


class EntityIndex:
    """Resolution candidates of one scope, indexed by name, alias, acronym and vector.

    Kept in memory by the graph and updated as entities arrive, so resolving a mention does not
    scan the table: exact and acronym stages are dict lookups, fuzzy runs in rapidfuzz's C loop.
    Usage: ``index = EntityIndex(candidates); index.resolve(mention, vector)``.
    """

    def __init__(self, candidates: Sequence[Candidate] = ()) -> None:
        self._cands: dict[str, Candidate] = {}
        self._by_norm: dict[str, set[str]] = {}
        self._by_acronym: dict[str, set[str]] = {}
        self._fuzzy_norms: dict[str, str] = {}  # id → norm of names long and varied enough for fuzzy
        self._fuzzy: tuple[list[str], list[str]] | None = None  # (norms, ids), rebuilt lazily
        for c in candidates:
            self.add(c)

    def __len__(self) -> int:
        return len(self._cands)

    def add(self, candidate: Candidate) -> None:
        """Add or replace a candidate (after a new alias, role or type)."""
        e = candidate.entity
        if e.id in self._cands:
            self.remove(e.id)
        self._cands[e.id] = candidate
        for key in _keys(e):
            self._by_norm.setdefault(key, set()).add(e.id)
        if len(e.name.split()) >= 2:
            self._by_acronym.setdefault(acronym(e.name), set()).add(e.id)
        if not low_entropy(e.norm_name):
            self._fuzzy_norms[e.id] = e.norm_name
        self._fuzzy = None

    def remove(self, entity_id: str) -> None:
        old = self._cands.pop(entity_id, None)
        if old is None:
            return
        for key in _keys(old.entity):
            self._by_norm.get(key, set()).discard(entity_id)
        self._by_acronym.get(acronym(old.entity.name), set()).discard(entity_id)
        self._fuzzy_norms.pop(entity_id, None)
        self._fuzzy = None

    def get(self, entity_id: str) -> Candidate | None:
        return self._cands.get(entity_id)

    def resolve(self, mention: ExtractedEntity, vector: np.ndarray | None = None, llm: JsonEngine | None = None,
                *, cheap_only: bool = False) -> Match | None:
        """Stages 1–3 always; 4–5 unless ``cheap_only`` (the caller embeds only what is left)."""
        norm = normalise(mention.name)
        exact = self._compatible(mention, self._by_norm.get(norm, ()))
        if exact:
            return Match(_most_recent(exact).entity.id, "exact", 1.0)
        acr = self._acronym(mention)
        if acr is not None:
            return Match(acr.entity.id, "acronym", 1.0)
        if mention.type in EXACT_ONLY:
            return None
        fuzzy = self._best_fuzzy(mention, norm)
        if fuzzy is not None and fuzzy[1] >= FUZZY_THRESHOLD:
            return Match(fuzzy[0].entity.id, "fuzzy", fuzzy[1] / 100.0)
        if cheap_only:
            return None
        dense = _best_cosine(mention, vector, self._compatible(mention, self._cands))
        if dense is not None and dense[1] >= COSINE_THRESHOLD:
            return Match(dense[0].entity.id, "embedding", dense[1])
        if llm is not None:
            return _ask_llm(llm, mention, fuzzy, dense)
        return None

    def _compatible(self, mention: ExtractedEntity, ids: Iterable[str]) -> list[Candidate]:
        return [self._cands[i] for i in ids if compatible(mention, self._cands[i].entity)]

    def _acronym(self, mention: ExtractedEntity) -> Candidate | None:
        name = mention.name.replace(".", "").strip()
        if name.isupper():
            hits = self._compatible(mention, self._by_acronym.get(name, ()))
            hits = [c for c in hits if is_acronym_of(mention.name, c.entity.name)]
        elif len(name.split()) >= 2:
            short = self._compatible(mention, self._by_norm.get(acronym(name).lower(), ()))
            hits = [c for c in short if is_acronym_of(c.entity.name, mention.name)]
        else:
            hits = []
        return _most_recent(hits) if hits else None

    def _best_fuzzy(self, mention: ExtractedEntity, norm: str) -> tuple[Candidate, float] | None:
        if low_entropy(norm):
            return None
        if self._fuzzy is None:
            self._fuzzy = (list(self._fuzzy_norms.values()), list(self._fuzzy_norms))
        norms, ids = self._fuzzy
        for _, score, pos in process.extract(norm, norms, scorer=fuzz.ratio, score_cutoff=75, limit=5):
            cand = self._cands[ids[pos]]
            if compatible(mention, cand.entity):
                return cand, float(score)
        return None


def _keys(entity: Entity) -> set[str]:
    return {entity.norm_name, normalise(entity.name), *(normalise(a) for a in entity.aliases)}


def _most_recent(cands: Sequence[Candidate]) -> Candidate:
    epoch = datetime.min.replace(tzinfo=UTC)
    return max(cands, key=lambda c: c.entity.last_seen_at or epoch)


def _best_cosine(mention: ExtractedEntity, vector: np.ndarray | None,
                 pool: Sequence[Candidate]) -> tuple[Candidate, float] | None:
    if vector is None or mention.type == "person":
        return None
    scored = [(c, float(np.dot(vector, c.vector))) for c in pool
              if c.vector is not None and c.entity.type != "person"]
    return max(scored, key=lambda p: p[1], default=None)


def _ask_llm(llm: JsonEngine, mention: ExtractedEntity, fuzzy: tuple[Candidate, float] | None,
             dense: tuple[Candidate, float] | None) -> Match | None:
    near = [p[0] for p in (fuzzy if fuzzy and fuzzy[1] >= 75 else None, dense if dense and dense[1] >= 0.7 else None) if p]
    if not near:
        return None
    entity = near[0].entity
    prompt = (f'Do "{mention.name}" ({mention.type}) and "{entity.name}" ({entity.type}; {entity.summary}) '
              'name the same real-world entity? Answer as JSON {"same": true|false}.')
    try:
        answer = llm.complete_json([{"role": "user", "content": prompt}], _SAME_SCHEMA)
    except Exception as exc:  # a failing model must not stop ingestion; the mention becomes a new entity
        log.warning("LLM entity resolution failed: %s", exc)
        return None
    return Match(entity.id, "llm", 1.0) if answer.get("same") is True else None
