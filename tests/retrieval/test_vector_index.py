"""FAISS index (flat and HNSW) against the exact numpy index: one contract, several backends."""
import numpy as np
import pytest

from retrieval.vector_index import ExactVectorIndex, FaissVectorIndex, VectorConfig


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


BACKENDS = {
    "exact": lambda d: ExactVectorIndex(d),
    "faiss-flat": lambda d: FaissVectorIndex(d, VectorConfig(hnsw_threshold=10**9, exact_gather_limit=16)),
    "faiss-gather": lambda d: FaissVectorIndex(d, VectorConfig(hnsw_threshold=10**9)),
}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_contract_top_k_with_masks(backend):
    d = 32
    data = _unit(600, d, 1)
    idx = BACKENDS[backend](d)
    idx.add(data[:250])
    idx.add(data[250:])
    ref = ExactVectorIndex(d)
    ref.add(data)
    q = _unit(1, d, 2)[0]
    for mask in (np.ones(600, bool), np.arange(600) % 3 == 0, np.arange(600) < 5, np.zeros(600, bool)):
        rows, scores = idx.search(q, 10, mask)
        ref_rows, ref_scores = ref.search(q, 10, mask)
        assert list(rows) == list(ref_rows)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)
        assert all(mask[r] for r in rows)
    np.testing.assert_allclose(idx.vectors(np.array([3, 400])), data[[3, 400]])


def test_hnsw_switch_keeps_vectors_and_finds_neighbours():
    d = 48
    data = _unit(3000, d, 3)
    idx = FaissVectorIndex(d, VectorConfig(hnsw_threshold=1000, exact_gather_limit=100))
    idx.add(data[:900])
    assert not idx.is_hnsw
    idx.add(data[900:])
    assert idx.is_hnsw and len(idx) == 3000
    np.testing.assert_allclose(idx.vectors(np.array([0, 2999])), data[[0, 2999]])
    ref = ExactVectorIndex(d)
    ref.add(data)
    queries = _unit(50, d, 4)
    recall = []
    for q in queries:
        for mask in (np.ones(3000, bool), np.arange(3000) % 4 == 0):
            got = set(idx.search(q, 10, mask)[0])
            assert all(mask[r] for r in got)
            recall.append(len(got & set(ref.search(q, 10, mask)[0])) / 10)
    assert np.mean(recall) >= 0.95


def test_hnsw_save_and_load(tmp_path):
    d = 16
    data = _unit(300, d, 5)
    idx = FaissVectorIndex(d, VectorConfig(hnsw_threshold=100, exact_gather_limit=10))
    idx.add(data)
    idx.save(tmp_path / "v.faiss")
    back = FaissVectorIndex(d, VectorConfig(hnsw_threshold=100, exact_gather_limit=10))
    back.load(tmp_path / "v.faiss")
    q = data[7]
    assert back.is_hnsw
    assert list(back.search(q, 5, np.ones(300, bool))[0]) == list(idx.search(q, 5, np.ones(300, bool))[0])


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_search_rows_equals_search_with_the_same_mask(backend):
    d = 24
    data = _unit(700, d, 9)
    idx = BACKENDS[backend](d)
    idx.add(data)
    q = _unit(1, d, 10)[0]
    for rows in (np.arange(0, 700, 7), np.arange(650), np.array([3, 5]), np.zeros(0, np.int64)):
        mask = np.zeros(700, bool)
        mask[rows] = True
        got, scores = idx.search_rows(q, 8, rows)
        ref, ref_scores = idx.search(q, 8, mask)
        assert list(got) == list(ref)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_search_prefixes_equals_search_rows_on_each_prefix(backend):
    d = 24
    data = _unit(700, d, 11)
    idx = BACKENDS[backend](d)
    idx.add(data)
    queries = _unit(4, d, 12)
    rows = np.arange(0, 700, 3)
    limits = [0, 10, 351, 700]  # nothing before, a few rows, half, everything
    found = idx.search_prefixes(queries, 6, rows, limits)
    assert len(found) == 4 and len(found[0][0]) == 0
    for q, limit, (got, scores) in zip(queries, limits, found, strict=True):
        ref, ref_scores = idx.search_rows(q, 6, rows[rows < limit])
        assert list(got) == list(ref)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)
