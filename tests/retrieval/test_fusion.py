import numpy as np
import pytest

from retrieval.fusion import blend, group_context, mmr, recency, rrf


def test_rrf_sums_weighted_reciprocal_ranks():
    fused = rrf({"dense": [1, 2], "bm25": [2, 3]}, {"dense": 1.0, "bm25": 2.0}, k=60)
    assert fused[1] == pytest.approx(1 / 61)
    assert fused[2] == pytest.approx(1 / 62 + 2 / 61)
    assert fused[3] == pytest.approx(2 / 62)
    assert max(fused, key=fused.get) == 2


def test_recency_half_life():
    assert recency(0, 30) == 1.0
    assert recency(30, 30) == pytest.approx(0.5)
    assert recency(-5, 30) == 1.0


def test_blend_never_lifts_an_irrelevant_note():
    assert blend(0.0, 1.0, 1.0, 0.5, 0.5) == 0.0
    assert blend(1.0, 1.0, 1.0, 0.2, 0.1) == pytest.approx(1.0)
    assert blend(1.0, 0.0, 0.0, 0.2, 0.1) < blend(0.9, 1.0, 1.0, 0.2, 0.1)


def test_mmr_skips_near_duplicates():
    v = np.array([[1, 0], [0.999, 0.0447], [0, 1]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    scores = np.array([0.9, 0.89, 0.5])
    assert mmr(scores, v, 2, lam=1.0) == [0, 1]
    assert mmr(scores, v, 2, lam=0.5) == [0, 2]
    assert mmr(scores, v, 0, lam=0.5) == []



def test_group_context_lifts_a_turn_toward_its_sessions_best():
    scores = np.array([1.0, 0.2, 0.4, 0.3])
    groups = ["s1", "s1", "s2", None]
    lifted = group_context(scores, groups, 0.5)
    assert lifted.tolist() == pytest.approx([1.0, 0.6, 0.4, 0.3])  # best and ungrouped unchanged
    assert lifted[1] > lifted[2]  # the weak turn of the matching session now outranks s2
    assert group_context(scores, groups, 0.0) is scores


def test_mmr_same_group_spreads_over_sessions():
    # Three orthogonal items: by score alone the top two are both from session "a".
    scores = np.array([1.0, 0.9, 0.8])
    vectors = np.eye(3, dtype=np.float32)
    groups = ["a", "a", "b"]
    assert mmr(scores, vectors, 2, 0.8, groups, same_group=0.0) == [0, 1]
    assert mmr(scores, vectors, 2, 0.8, groups, same_group=0.8) == [0, 2]
    # Items without a session never count as one group.
    assert mmr(scores, vectors, 2, 0.8, [None, None, "b"], same_group=0.8) == [0, 1]
    # All k still come back when every item shares the session.
    assert sorted(mmr(scores, vectors, 3, 0.8, ["a", "a", "a"], same_group=0.8)) == [0, 1, 2]
