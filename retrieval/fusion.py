"""Pure ranking math: reciprocal-rank fusion, recency decay, the final blend, and MMR."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def rrf(rankings: Mapping[str, Sequence[int]], weights: Mapping[str, float], k: float = 60.0) -> dict[int, float]:
    """Weighted reciprocal-rank fusion: Σ_m w_m / (k + rank_m), ranks from 1.

    Usage: ``rrf({"dense": [7, 3], "bm25": [3]}, {"dense": 1.0, "bm25": 1.0})``.
    """
    fused: dict[int, float] = {}
    for method, items in rankings.items():
        w = weights.get(method, 1.0)
        for rank, item in enumerate(items, start=1):
            fused[item] = fused.get(item, 0.0) + w / (k + rank)
    return fused


def recency(age_days: float, half_life_days: float) -> float:
    """1.0 for something that just happened, 0.5 after one half-life. Future events count as now."""
    if half_life_days <= 0:
        raise ValueError("half_life_days must be positive")
    return math.exp(-math.log(2.0) * max(age_days, 0.0) / half_life_days)


def blend(relevance: float, retention: float, recent: float, w_retention: float, w_recency: float) -> float:
    """Final score: relevance (0..1, normalised) lifted by retention and recency.

    Multiplicative lift, so an irrelevant note never wins on freshness alone:
    relevance · (1 + w_retention·retention + w_recency·recency) / (1 + w_retention + w_recency).
    """
    return relevance * (1.0 + w_retention * retention + w_recency * recent) / (1.0 + w_retention + w_recency)


def group_context(scores: np.ndarray, groups: Sequence[str | None], weight: float) -> np.ndarray:
    """Lift each item toward the best score of its group (a conversation session):
    (1 - w)·s_i + w·max_{j in group(i)} s_j. A turn that says little by itself but sits in a
    session that clearly matches the query ("yes, that one" after the user named the thing) rises;
    items without a group keep their score.
    """
    if weight <= 0.0 or len(scores) == 0:
        return scores
    best: dict[str, float] = {}
    for s, g in zip(scores, groups, strict=True):
        if g is not None:
            best[g] = max(best.get(g, -np.inf), float(s))
    lifted = np.array([best[g] if g is not None else s for s, g in zip(scores, groups, strict=True)])
    return (1.0 - weight) * scores + weight * lifted


def mmr(scores: np.ndarray, vectors: np.ndarray, k: int, lam: float,
        groups: Sequence[str | None] | None = None, same_group: float = 0.0) -> list[int]:
    """Maximal marginal relevance: indices of ``k`` items trading score against redundancy.

    ``scores`` should be on a 0..1 scale (cosine similarities of ``vectors`` are); ``lam = 1``
    returns plain score order. ``same_group`` > 0 counts two items of one group (a conversation
    session) as at least that similar, so the top ``k`` spread over sessions instead of filling
    up with turns of the one that matches best.
    """
    n = len(scores)
    if n == 0 or k <= 0:
        return []
    if lam >= 1.0:
        return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]
    sims = vectors @ vectors.T
    if groups is not None and same_group > 0.0:
        sims = np.maximum(sims, same_group * _same_group(groups))
    chosen: list[int] = []
    max_sim = np.full(n, -np.inf)
    available = np.ones(n, bool)
    for _ in range(min(k, n)):
        redundancy = np.where(np.isfinite(max_sim), max_sim, 0.0)
        value = np.where(available, lam * scores - (1.0 - lam) * redundancy, -np.inf)
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, sims[best])
    return chosen


def _same_group(groups: Sequence[str | None]) -> np.ndarray:
    """1.0 where items i and j share a group (items without one share nothing)."""
    codes: dict[str, int] = {}
    ids = np.array([codes.setdefault(g, len(codes)) if g is not None else -1 - i for i, g in enumerate(groups)])
    return (ids[:, None] == ids[None, :]).astype(np.float32)
