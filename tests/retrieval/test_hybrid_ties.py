"""Tied retriever scores share a rank, so fusion does not depend on the order rows were added in
(a rebuilt index holds its rows in id order, the live one in insertion order)."""
import numpy as np

from memory.types import IndexedNote, Scope
from retrieval.hybrid import HybridIndex, shared_ranks
from retrieval.ranking import RankingConfig, relevance_scores

TEXTS = {"a": "bought a road bike", "b": "bought a road bike", "c": "road trip to Lisbon", "d": "a quiet week"}


def test_shared_ranks():
    assert shared_ranks(np.array([3.0, 2.0, 2.0, 1.0, 1.0])) == [1, 2, 2, 4, 4]
    assert shared_ranks(np.array([])) == []


def _relevance(order: list[str]) -> dict[str, float]:
    rng = np.random.default_rng(0)
    vecs = {nid: v / np.linalg.norm(v) for nid, v in zip(sorted(TEXTS), rng.standard_normal((4, 8)), strict=True)}
    idx = HybridIndex(8)
    idx.add([IndexedNote(nid, Scope("ann"), TEXTS[nid], False, None) for nid in order],
            np.stack([vecs[nid] for nid in order]).astype(np.float32))
    cands = idx.candidates(np.ones(8, np.float32) / np.sqrt(8), "road bike", idx.mask(Scope("ann")), 10)
    return {c.note_id: round(float(r), 9) for c, r in zip(cands, relevance_scores(cands, RankingConfig()), strict=True)}


def test_fusion_does_not_depend_on_insertion_order():
    forward, backward = _relevance(["a", "b", "c", "d"]), _relevance(["d", "c", "b", "a"])
    assert forward == backward
