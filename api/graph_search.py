"""Graph signals for search: the facts that match a query, and the notes those facts came from.

Facts are found two ways: by cosine between the query and each fact sentence (the query turned
to the user's perspective, as facts are written: "where do I live" → "where do User live"), and
by walking the graph around the entities the query names, closer facts first (node-distance
reranking). The source notes of the best facts become a third ranked list in the note fusion,
so a note whose fact answers the question rises even when its words do not match; the facts
themselves join the result list as ``FactHit``s, rendered with their validity.

Usage: ``ranking = rank_graph(mem.graph, query, qvec, scope, as_of=None, k=20, cfg=GraphSearchConfig())``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from graph.queries import GraphQueries
from graph.store import GraphStore
from graph.types import Fact
from memory.types import Scope
from retrieval.ranking import Hit, RankingConfig


@dataclass(frozen=True)
class GraphSearchConfig:
    """``depth``: hops of the walk around named entities; ``w_near``: score bonus of a fact on a
    named entity (divided by 1 + its distance); ``w_fact``: weight of a fact's rank when facts and
    notes are placed in one list (2.0 puts the best fact level with a note ranked first by both
    text retrievers); ``max_facts``: facts in a result list at most, each scoring (similarity +
    bonus) at least ``min_fact_score``; ``min_note_score``: the score a fact needs for its source
    notes to join the note ranking."""

    enabled: bool = True
    depth: int = 1
    w_near: float = 0.1
    w_fact: float = 2.0
    max_facts: int = 5
    min_fact_score: float = 0.3
    # Only facts scoring at least this lend their source notes to the note ranking: a weak
    # match's note displaces a better one without answering anything.
    min_note_score: float = 0.5


@dataclass
class FactHit:
    """A fact in a search result. ``content`` is the fact rendered with its validity
    ("User lives in Lisbon (since 2026-05, previously Berlin)"); ``note_ids`` its source notes."""

    id: str
    content: str
    score: float
    similarity: float
    distance: int | None
    fact: Fact
    note_ids: list[str]
    kind: str = "fact"

    # The explanation attributes of a note ``Hit``, so code that prints a mixed result list works:
    # a fact has no forgetting curve or BM25 score of its own.
    @property
    def metadata(self) -> dict[str, Any]:
        return {"predicate": self.fact.predicate}

    @property
    def event_time(self) -> datetime:
        return self.fact.valid_at or self.fact.created_at

    @property
    def dense(self) -> float:
        return self.similarity

    @property
    def relevance(self) -> float:
        return self.score

    retention = None
    recency = None
    bm25 = None
    note = None

    def as_dict(self) -> dict[str, Any]:
        f = self.fact
        return {
            "kind": self.kind, "id": self.id, "content": self.content, "score": self.score,
            "similarity": self.similarity, "distance": self.distance, "predicate": f.predicate,
            "subject": f.subject_name, "object": f.object_name, "fact": f.fact,
            "valid_at": _iso(f.valid_at), "invalid_at": _iso(f.invalid_at), "created_at": _iso(f.created_at),
            "expired_at": _iso(f.expired_at), "note_ids": list(self.note_ids), **f.scope.as_dict(),
        }


@dataclass
class GraphRanking:
    """Facts best first with their scores, and the source notes of those facts, best first."""

    facts: list[FactHit]
    note_ids: list[str]


class _Graph(GraphQueries):
    """What this module needs of ``TemporalGraph``: its queries and its store."""

    store: GraphStore


def rank_graph(graph: _Graph, query: str, query_vec: np.ndarray | None, scope: Scope, as_of: datetime | None,
               k: int, cfg: GraphSearchConfig) -> GraphRanking:
    """The ``k`` best facts for ``query`` in ``scope`` (current ones, or those valid ``as_of``)."""
    scored = {f.id: (f, s, None) for f, s in graph.search_facts(query_vec, query, scope, k=k, as_of=as_of)}
    walked = _near_named_entities(graph, query, scope, as_of, cfg.depth)
    similarity = _similarities(graph, [f.id for f, _ in walked if f.id not in scored], query_vec)
    for fact, dist in walked:
        prior = scored.get(fact.id)
        scored[fact.id] = (prior[0] if prior else fact, prior[1] if prior else similarity.get(fact.id, 0.0), dist)
    ranked = sorted(scored.values(), key=lambda t: -(t[1] + _bonus(t[2], cfg)))[:k]
    sources = graph.store.note_ids([e for f, _, _ in ranked for e in f.episode_ids])
    hits, note_ids = [], []
    for fact, sim, dist in ranked:
        notes = list(dict.fromkeys(sources[e] for e in fact.episode_ids if e in sources))
        score = sim + _bonus(dist, cfg)
        hits.append(FactHit(fact.id, fact.render(), score, sim, dist, fact, notes))
        if score >= cfg.min_note_score:
            note_ids.extend(n for n in notes if n not in note_ids)
    return GraphRanking(hits, note_ids)


def place_facts(hits: list[Hit], facts: list[FactHit], top_raw: float, top_k: int, ranking: RankingConfig,
                cfg: GraphSearchConfig) -> list[Hit | FactHit]:
    """Notes (in their MMR order) and facts in one list of at most ``top_k``. A fact's score is put
    on the notes' scale: the fact at rank r weighs ``w_fact / (rrf_k + r)`` in the same fused units
    as a note's RRF sum, divided by the best note's sum (so 1.0 = level with the best note); it goes
    in front of the first note that scores lower."""
    chosen = [f for f in facts if f.score >= cfg.min_fact_score][: cfg.max_facts]
    for rank, fact in enumerate(chosen, start=1):
        if ranking.fusion == "rrf":
            raw = cfg.w_fact / (ranking.rrf_k + rank)
        else:
            raw = ranking.w_dense * fact.similarity
        fact.score = min(1.0, raw / top_raw) if top_raw > 0 else 1.0
    out: list[Hit | FactHit] = []
    pending = list(chosen)
    for hit in hits:
        while pending and pending[0].score > hit.score:
            out.append(pending.pop(0))
        out.append(hit)
    return (out + pending)[:top_k]


def _near_named_entities(graph: _Graph, query: str, scope: Scope, as_of: datetime | None,
                         depth: int) -> list[tuple[Fact, int]]:
    """Facts within ``depth`` hops of each entity the query names, with their distance."""
    out: dict[str, tuple[Fact, int]] = {}
    for entity in graph.entities_in(query, **scope.as_dict()):
        for fact, dist in graph.around(entity.id, depth, **scope.as_dict(), as_of=as_of):
            if fact.id not in out or dist < out[fact.id][1]:
                out[fact.id] = (fact, dist)
    return list(out.values())


def _similarities(graph: _Graph, fact_ids: list[str], query_vec: np.ndarray | None) -> dict[str, float]:
    """Cosine of facts reached only by the walk (search_facts kept just its top k)."""
    if query_vec is None or not fact_ids:
        return {}
    return {i: float(np.dot(v, query_vec)) for i, v in graph.store.fact_embeddings(fact_ids).items()}


def _bonus(distance: int | None, cfg: GraphSearchConfig) -> float:
    return 0.0 if distance is None else cfg.w_near / (1 + distance)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None
