"""Pure sampling functions over one row of logits.

Usage: ``tok = sample(logits, params, generator, previous_ids)`` with logits: [V] fp32.

Order (as in HF transformers and llama.cpp): repetition penalty -> temperature -> top-k -> top-p
-> draw. Temperature 0 is greedy.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from inference.params import GenerationParams


def make_generator(seed: int | None) -> torch.Generator:
    """A private RNG so that a seed reproduces a sample regardless of other torch users."""
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def apply_repetition_penalty(logits: torch.Tensor, previous: Sequence[int], penalty: float) -> torch.Tensor:
    """CTRL-style penalty on tokens already seen: positive logits / p, negative logits * p."""
    if penalty == 1.0 or not previous:
        return logits
    out = logits.clone()
    ids = torch.tensor(sorted(set(previous)), dtype=torch.long)
    seen = out[ids]
    out[ids] = torch.where(seen > 0, seen / penalty, seen * penalty)
    return out


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits (k = 0 keeps all); the rest become -inf."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k).values[-1]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus: keep the smallest set of most likely tokens whose probability reaches p."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    drop_sorted = cum - sorted_logits.softmax(-1) >= p  # mass before this token already reaches p
    drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample(
    logits: torch.Tensor,
    params: GenerationParams,
    generator: torch.Generator | None = None,
    previous: Sequence[int] = (),
) -> int:
    """Choose the next token id from logits: [V]."""
    logits = apply_repetition_penalty(logits.float(), previous, params.repetition_penalty)
    if params.temperature == 0:
        return int(torch.argmax(logits))
    logits = top_p_filter(top_k_filter(logits / params.temperature, params.top_k), params.top_p)
    probs = logits.softmax(-1)
    return int(torch.multinomial(probs, 1, generator=generator))
