"""The graph's note ranking joins the hybrid candidates without widening the caller's scope."""
import numpy as np

from memory.types import IndexedNote, Scope
from retrieval.hybrid import HybridIndex
from retrieval.ranking import RankingConfig, relevance_scores


def _index() -> HybridIndex:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((4, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    idx = HybridIndex(8)
    notes = [IndexedNote(f"n{i}", Scope("ann" if i < 3 else "bob"), f"note {i} about lisbon", False, None)
             for i in range(4)]
    idx.add(notes, vecs)
    return idx


def test_graph_ranks_are_set_and_missed_notes_join_within_scope():
    idx = _index()
    mask = idx.mask(Scope("ann"))
    cands = idx.candidates(np.ones(8, np.float32) / np.sqrt(8), "zzz", mask, 1)  # dense finds one note
    assert len(cands) == 1
    out = idx.with_graph(cands, ["n2", "n3", "missing", "n2", cands[0].note_id], mask)
    by_id = {c.note_id: c for c in out}
    assert "n3" not in by_id  # bob's note: the graph may not widen ann's scope
    assert by_id["n2"].graph_rank == 1 and by_id["n2"].dense is None
    assert by_id[cands[0].note_id].graph_rank in (1, 2)  # the text retrievers' find keeps its graph rank
    assert len(out) == len(by_id)  # a note repeated in the graph's ranking joins once


def test_graph_rank_lifts_relevance_in_rrf_and_weight_zero_ignores_it():
    idx = _index()
    mask = idx.mask(Scope("ann"))
    cands = idx.candidates(np.ones(8, np.float32) / np.sqrt(8), "lisbon", mask, 3)
    last = max(cands, key=lambda c: (c.dense_rank or 99))
    boosted = idx.with_graph(cands, [last.note_id], mask)
    with_graph = relevance_scores(boosted, RankingConfig())
    without = relevance_scores(boosted, RankingConfig(w_graph=0.0))
    pos = [c.note_id for c in boosted].index(last.note_id)
    assert with_graph[pos] > without[pos] * 0.99 and with_graph[pos] == max(with_graph)
    assert np.allclose(without, relevance_scores(cands, RankingConfig()))
