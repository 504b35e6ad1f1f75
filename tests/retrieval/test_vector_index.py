"""The vector index (exact and inverted file) against the exact numpy index: one contract, several backends."""
import faiss
import numpy as np
import pytest

from retrieval.vector_index import ExactVectorIndex, FaissVectorIndex, VectorConfig


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


BACKENDS = {
    "exact": lambda d: ExactVectorIndex(d),
    "faiss-flat": lambda d: FaissVectorIndex(d, VectorConfig(ann_threshold=10**9, exact_gather_limit=16)),
    "faiss-gather": lambda d: FaissVectorIndex(d, VectorConfig(ann_threshold=10**9)),
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


def _clustered(n: int, d: int, seed: int, centres: int = 40) -> np.ndarray:
    """Unit vectors around a few centres, as sentence embeddings are (an inverted file relies on
    that; on uniform random vectors no partition helps)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((centres, d))[rng.integers(0, centres, n)] + 0.35 * rng.standard_normal((n, d))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _recall(idx, ref, queries, masks, k=10) -> float:
    found = []
    for q in queries:
        for mask in masks:
            got = idx.search(q, k, mask)[0]
            assert all(mask[r] for r in got) and len(got) == min(k, mask.sum())
            found.append(len(set(got) & set(ref.search(q, k, mask)[0])) / k)
    return float(np.mean(found))


def test_ivf_switch_keeps_vectors_and_finds_neighbours():
    d = 48
    data = _clustered(3100, d, 3)
    data, queries = data[:3000], data[3000:]
    idx = FaissVectorIndex(d, VectorConfig(ann_threshold=1000, exact_gather_limit=100, ivf_lists=16, ivf_probe=4))
    idx.add(data[:900])
    assert idx.kind == "exact"
    idx.add(data[900:])
    assert idx.kind == "ivf" and len(idx) == 3000 and idx.ann.lists == 16
    np.testing.assert_allclose(idx.vectors(np.array([0, 2999])), data[[0, 2999]])
    ref = ExactVectorIndex(d)
    ref.add(data)
    masks = (np.ones(3000, bool), np.arange(3000) % 4 == 0)
    assert _recall(idx, ref, queries[:50], masks) >= 0.9
    # Scores come from the float vectors, not the 8-bit codes.
    q = queries[50]
    rows, scores = idx.search(q, 10, masks[0])
    np.testing.assert_allclose(scores, data[rows] @ q, rtol=1e-6)


def test_ivf_probes_more_lists_for_a_selective_mask():
    d = 32
    data = _clustered(4030, d, 13)
    data, queries = data[:4000], data[4000:]
    cfg = VectorConfig(ann_threshold=1000, exact_gather_limit=50, ivf_lists=64, ivf_probe=2, ivf_rescore=0)
    idx = FaissVectorIndex(d, cfg)
    idx.add(data)
    ref = ExactVectorIndex(d)
    ref.add(data)
    # 1 row in 20: two lists would hold ~6 of them; the probe widens to 40 lists (~125 rows).
    assert _recall(idx, ref, queries, [np.arange(4000) % 20 == 0]) >= 0.9


def test_ivf_with_too_few_candidates_scores_the_whole_mask():
    d = 16
    data = _unit(2000, d, 15)
    idx = FaissVectorIndex(d, VectorConfig(ann_threshold=500, exact_gather_limit=10, ivf_lists=12, ivf_probe=1,
                                           ivf_rescore=0))
    idx.add(data)
    ref = ExactVectorIndex(d)
    ref.add(data)
    q = _unit(1, d, 16)[0]
    mask = np.ones(2000, bool)
    assert len(idx.ann.candidates(q, 1500, mask, 2000)) < 1500  # one list of ~170 rows
    rows, scores = idx.search(q, 1500, mask)
    assert list(rows) == list(ref.search(q, 1500, mask)[0])


def _same_search(a, b, data, seed):
    n = len(data)
    for q in _unit(10, data.shape[1], seed):
        for mask in (np.ones(n, bool), np.arange(n) % 3 == 0):
            got, ref = a.search(q, 10, mask), b.search(q, 10, mask)
            assert list(got[0]) == list(ref[0])
            np.testing.assert_array_equal(got[1], ref[1])


def test_ivf_is_the_same_whatever_the_batches():
    d = 24
    data = _unit(2500, d, 17)
    cfg = VectorConfig(ann_threshold=1000, exact_gather_limit=10, ivf_lists=16, ivf_probe=2)
    one, many = FaissVectorIndex(d, cfg), FaissVectorIndex(d, cfg)
    one.add(data)
    for start in range(0, 2500, 333):
        many.add(data[start : start + 333])
    _same_search(one, many, data, 18)


def test_ivf_save_and_load(tmp_path):
    d = 16
    data = _unit(3000, d, 5)
    cfg = VectorConfig(ann_threshold=1000, exact_gather_limit=10, ivf_lists=8, ivf_probe=2)
    idx = FaissVectorIndex(d, cfg)
    idx.add(data)
    idx.save(tmp_path / "v.npz")
    back = FaissVectorIndex(d, cfg)
    back.load(tmp_path / "v.npz")
    assert back.kind == "ivf" and len(back) == 3000
    _same_search(idx, back, data, 6)
    back.add(data[:5])  # still growing after a load
    idx.add(data[:5])
    _same_search(idx, back, np.vstack([data, data[:5]]), 7)


@pytest.mark.parametrize("legacy", ["flat", "hnsw"])
def test_a_faiss_file_of_the_earlier_format_loads(tmp_path, legacy):
    d = 16
    data = _unit(1500, d, 19)
    old = faiss.IndexFlatIP(d) if legacy == "flat" else faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
    old.add(data)
    faiss.write_index(old, str(tmp_path / "v.faiss"))
    cfg = VectorConfig(ann_threshold=1000, exact_gather_limit=10, ivf_lists=8, ivf_probe=2)
    back = FaissVectorIndex(d, cfg)
    back.load(tmp_path / "v.faiss")
    fresh = FaissVectorIndex(d, cfg)
    fresh.add(data)
    assert back.kind == "ivf" and len(back) == 1500
    np.testing.assert_array_equal(back.vectors(np.arange(1500)), data)
    _same_search(back, fresh, data, 20)


def test_a_mismatched_file_is_refused(tmp_path):
    idx = FaissVectorIndex(16)
    idx.add(_unit(10, 16, 21))
    idx.save(tmp_path / "v.npz")
    with pytest.raises(ValueError, match="shape"):
        FaissVectorIndex(8).load(tmp_path / "v.npz")
    faiss.write_index(faiss.IndexFlatIP(8), str(tmp_path / "v.faiss"))
    with pytest.raises(ValueError, match="dimension 16"):
        FaissVectorIndex(16).load(tmp_path / "v.faiss")


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
