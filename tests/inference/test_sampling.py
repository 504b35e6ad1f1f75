"""Sampling: each filter against hand-computed cases, and seeded reproducibility."""
from __future__ import annotations

import pytest
import torch

from inference.params import GenerationParams
from inference.sampling import apply_repetition_penalty, make_generator, sample, top_k_filter, top_p_filter

NEG = float("-inf")
LOGITS = torch.tensor([1.0, 3.0, 2.0, -1.0])


@pytest.mark.parametrize(("k", "expected"), [
    (0, [1.0, 3.0, 2.0, -1.0]),
    (1, [NEG, 3.0, NEG, NEG]),
    (2, [NEG, 3.0, 2.0, NEG]),
    (4, [1.0, 3.0, 2.0, -1.0]),
])
def test_top_k(k: int, expected: list[float]) -> None:
    assert top_k_filter(LOGITS, k).tolist() == expected


@pytest.mark.parametrize(("p", "kept"), [
    (1.0, [0, 1, 2, 3]),
    (0.5, [1]),  # p(3.0) = 0.64 already reaches 0.5
    (0.8, [1, 2]),  # 0.64 + 0.24 = 0.88
    (0.95, [0, 1, 2]),
])
def test_top_p(p: float, kept: list[int]) -> None:
    out = top_p_filter(LOGITS, p)
    assert [i for i, v in enumerate(out.tolist()) if v != NEG] == kept


@pytest.mark.parametrize(("previous", "expected"), [
    ([], [1.0, 3.0, 2.0, -1.0]),
    ([1, 3], [1.0, 1.5, 2.0, -2.0]),  # positive logits divided, negative multiplied
    ([1, 1, 1], [1.0, 1.5, 2.0, -1.0]),  # once per distinct token
])
def test_repetition_penalty(previous: list[int], expected: list[float]) -> None:
    assert apply_repetition_penalty(LOGITS, previous, 2.0).tolist() == expected


def test_greedy_and_penalised_greedy() -> None:
    assert sample(LOGITS, GenerationParams(temperature=0)) == 1
    assert sample(LOGITS, GenerationParams(temperature=0, repetition_penalty=2.0), previous=[1]) == 2


def test_seed_reproduces_and_distribution_follows_softmax() -> None:
    params = GenerationParams(temperature=1.0, seed=7)
    a = [sample(LOGITS, params, make_generator(7)) for _ in range(5)]
    g1, g2 = make_generator(7), make_generator(7)
    assert [sample(LOGITS, params, g1) for _ in range(50)] == [sample(LOGITS, params, g2) for _ in range(50)]
    g = make_generator(0)
    counts = torch.bincount(torch.tensor([sample(LOGITS, params, g) for _ in range(4000)]), minlength=4)
    expected = LOGITS.softmax(-1) * 4000
    assert bool(((counts - expected).abs() < 0.1 * 4000).all())
    assert len(a) == 5


def test_low_temperature_concentrates_and_top_k_one_is_greedy() -> None:
    g = make_generator(1)
    assert {sample(LOGITS, GenerationParams(temperature=0.05), g) for _ in range(50)} == {1}
    assert {sample(LOGITS, GenerationParams(temperature=5.0, top_k=1), g) for _ in range(50)} == {1}
