"""From retriever candidates to ranked hits: fusion, retention/recency blend, MMR."""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import numpy as np

from memory.types import Note, RankState
from retrieval.fusion import blend, group_context, mmr, recency
from retrieval.hybrid import Candidate
from retrieval.speaker import speaker_factor
from retrieval.supersession import current_first


@dataclass(frozen=True)
class RankingConfig:
    """Weights of hybrid search. Defaults were tuned on the LongMemEval dev set (docs/benchmarks.md)."""

    fusion: Literal["rrf", "linear"] = "rrf"
    rrf_k: float = 60.0
    w_dense: float = 1.0
    w_bm25: float = 1.0
    # Weight of the knowledge graph's note ranking (source notes of matching facts) in the fusion.
    w_graph: float = 1.0
    w_retention: float = 0.1
    w_recency: float = 0.05
    recency_half_life_days: float = 30.0
    mmr_lambda: float = 0.8
    # MMR counts two hits of one session as at least this similar (0 = sessions play no part).
    mmr_same_session: float = 0.0
    # Share of a hit's relevance taken from the best hit of its session (0 = turns stand alone).
    w_session: float = 0.0
    # A note that supersedes another (a `contradicts` link from it) ranks in front of it.
    current_first: bool = True
    # Chat turns of the speaker a query does not ask about (retrieval.speaker: "did I" asks about
    # the user's turns, "you recommended" about the assistant's) score 1 / (1 + w_speaker).
    w_speaker: float = 0.3
    # Each retriever's top-``pool`` feed the fusion. A deep pool gives a note found by both
    # retrievers both of its ranks (one retriever's 60th still counts in RRF) and gives the
    # speaker factor lower-ranked turns to lift (100 against 50: docs/benchmarks.md, retrieval
    # quality).
    pool_factor: int = 5
    min_pool: int = 100

    def pool(self, top_k: int) -> int:
        return max(self.min_pool, self.pool_factor * top_k)


@dataclass
class Hit:
    """One search result and why it ranked where it did.

    ``score`` is relevance blended with retention and recency (and marked down for a chat turn
    of the speaker the query does not ask about: retrieval.speaker); hits come in MMR order, which may
    put a slightly lower score first when the higher one repeats an earlier hit, and a note that
    supersedes another comes right before it whatever its score (retrieval.supersession); ``relevance`` the
    fused dense+BM25 relevance (0..1);
    ``dense`` the cosine similarity and ``bm25`` the BM25 score (None when that retriever did not
    find the note); ``retention`` the forgetting-curve value at search time, before this recall;
    ``speaker_factor`` what ``score`` was multiplied by for who said the note (1, or
    1 / (1 + w_speaker) for a chat turn of the speaker the query does not ask about).
    """

    id: str
    content: str
    metadata: dict[str, Any]
    event_time: datetime
    score: float
    relevance: float
    retention: float
    recency: float
    dense: float | None
    bm25: float | None
    note: Note
    graph_rank: int | None = None
    kind: str = "note"
    speaker_factor: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "id": self.id, "content": self.content, "metadata": self.metadata,
            "event_time": self.event_time.isoformat(), "score": self.score, "relevance": self.relevance,
            "retention": self.retention, "recency": self.recency, "dense": self.dense, "bm25": self.bm25,
            "graph_rank": self.graph_rank, "speaker_factor": self.speaker_factor,
            **self.note.scope.as_dict(),
        }


def relevance_scores(cands: list[Candidate], cfg: RankingConfig) -> np.ndarray:
    """Fused relevance of each candidate, scaled so the best is 1."""
    return _scaled(fused_scores(cands, cfg))[0]


def _scaled(raw: np.ndarray) -> tuple[np.ndarray, float]:
    """``raw`` divided by its maximum (unchanged when that is not positive), and the maximum."""
    top = float(raw.max(initial=0.0))
    return (raw / top if top > 0 else raw), top


def fused_scores(cands: list[Candidate], cfg: RankingConfig) -> np.ndarray:
    """Fused relevance before scaling (RRF sums or the linear mix), for placing other items
    (graph facts) on the same scale."""
    if not cands:
        return np.zeros(0)
    if cfg.fusion == "rrf":
        # Each candidate's own ranks, not its position in a sorted list: tied scores share a rank
        # (see retrieval.hybrid.shared_ranks), so fusion does not depend on row order.
        return np.array([sum(w / (cfg.rrf_k + r) for w, r in ((cfg.w_dense, c.dense_rank), (cfg.w_bm25, c.bm25_rank),
                                                             (cfg.w_graph, c.graph_rank)) if r) for c in cands])
    return _linear(cands, cfg)


def _linear(cands: list[Candidate], cfg: RankingConfig) -> np.ndarray:
    dense = np.array([max(c.dense or 0.0, 0.0) for c in cands])
    bm25 = np.array([c.bm25 or 0.0 for c in cands])
    bm25 = bm25 / bm25.max() if bm25.max() > 0 else bm25
    graph = np.array([1.0 / c.graph_rank if c.graph_rank else 0.0 for c in cands])
    return cfg.w_dense * dense + cfg.w_bm25 * bm25 + cfg.w_graph * graph


@dataclass(frozen=True)
class Scored:
    """A candidate's place in a ranking, before its note is read."""

    candidate: Candidate
    score: float
    relevance: float
    retention: float
    recency: float
    speaker_factor: float = 1.0


def rank(
    cands: list[Candidate],
    states: dict[str, RankState],
    retentions: dict[str, float],
    vectors: np.ndarray,
    now: datetime,
    top_k: int,
    cfg: RankingConfig,
    supersedes: Sequence[tuple[str, str]] = (),
    speaker: str | None = None,
) -> tuple[list[Scored], float]:
    """Order candidates into at most ``top_k`` (MMR order); ``vectors[i]`` belongs to ``cands[i]``.
    Candidates without a state (deleted since indexing, or indexed by an add not committed yet)
    drop out. ``supersedes`` holds (newer, older) note ids: with ``cfg.current_first`` a newer
    candidate goes in front of an older one it supersedes (retrieval.supersession). Also returns
    the best fused relevance before scaling, for placing other items (graph facts) on the same
    scale. ``speaker``: whose turns the query asks about (retrieval.speaker.asked_speaker)."""
    keep = [i for i, c in enumerate(cands) if c.note_id in states]
    cands, vectors = [cands[i] for i in keep], vectors[keep] if len(keep) else vectors[:0]
    rel, top = _scaled(fused_scores(cands, cfg))
    sessions = [states[c.note_id].session_id for c in cands]
    rel = group_context(rel, sessions, cfg.w_session)
    scored = [_scored(c, states[c.note_id], float(r), retentions[c.note_id], now, cfg, speaker)
              for c, r in zip(cands, rel, strict=True)]
    order = mmr(np.array([s.score for s in scored]), vectors, top_k, cfg.mmr_lambda, sessions, cfg.mmr_same_session)
    if cfg.current_first and supersedes:
        order = current_first(order, _newer_of(cands, supersedes), top_k)
    return [scored[i] for i in order], top


def _newer_of(cands: list[Candidate], supersedes: Sequence[tuple[str, str]]) -> dict[int, list[int]]:
    """Candidate index → indices of the candidates that supersede it, in link order (pairs
    outside the pool play no part)."""
    index = {c.note_id: i for i, c in enumerate(cands)}
    out: dict[int, list[int]] = {}
    for newer, older in supersedes:
        if newer in index and older in index and newer != older:
            out.setdefault(index[older], []).append(index[newer])
    return out


def to_hits(scored: list[Scored], notes: dict[str, Note]) -> list[Hit]:
    """Hits for ranked candidates whose notes were read (one deleted in between drops out)."""
    return [_hit(s, notes[s.candidate.note_id]) for s in scored if s.candidate.note_id in notes]


def _scored(c: Candidate, state: RankState, relevance: float, retention: float, now: datetime,
            cfg: RankingConfig, speaker: str | None) -> Scored:
    age_days = (now - state.event_time).total_seconds() / 86400.0
    recent = recency(age_days, cfg.recency_half_life_days)
    factor = speaker_factor(state.role, speaker, cfg.w_speaker)
    score = blend(relevance, retention, recent, cfg.w_retention, cfg.w_recency) * factor
    return Scored(c, score, relevance, retention, recent, factor)


def _hit(s: Scored, note: Note) -> Hit:
    c = s.candidate
    return Hit(note.id, note.content, note.metadata, note.event_time, s.score, s.relevance, s.retention, s.recency,
               c.dense, c.bm25, note, c.graph_rank, speaker_factor=s.speaker_factor)
