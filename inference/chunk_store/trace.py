"""A skewed reuse trace for comparing eviction policies, and its replay against a store.

Chunk popularity follows a Zipf law (request probability ∝ 1 / rank^alpha); chunk sizes vary.
Each chunk carries a retention hint — the memory layer's predicted reuse probability — that is
correlated with its popularity but noisy (percentile of its rank plus Gaussian noise). Halfway
the popularity of part of the chunks is reshuffled (a conversation moves on) and the hints of
the moved chunks are updated, as the memory layer would after recalls.

Usage: ``t = zipf_trace(seed=0)``; ``replay(store, t)`` -> hit rates.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from inference.chunk_kv import ChunkKV


@dataclass(frozen=True)
class Trace:
    sizes: dict[str, int]  # key -> n_tokens
    events: list[tuple[str, str, float]]  # ("get", key, 0) or ("hint", key, reuse)

    @property
    def total_tokens(self) -> int:
        return sum(self.sizes.values())


def _hints(order: list[str], rng: random.Random, noise: float) -> dict[str, float]:
    n = len(order)
    return {k: min(1.0, max(0.0, 1 - i / n + rng.gauss(0, noise))) for i, k in enumerate(order)}


def zipf_trace(n_chunks: int = 300, n_requests: int = 20000, alpha: float = 1.0, shuffle_share: float = 0.3,
               hint_noise: float = 0.15, min_tokens: int = 32, max_tokens: int = 256, seed: int = 0) -> Trace:
    """A deterministic trace; see the module docstring."""
    rng = random.Random(seed)
    keys = [f"c{i:05d}" for i in range(n_chunks)]
    sizes = {k: rng.randint(min_tokens, max_tokens) for k in keys}
    weights = [1 / (r + 1) ** alpha for r in range(n_chunks)]
    order = keys[:]
    rng.shuffle(order)  # order[r] is the chunk of popularity rank r
    events: list[tuple[str, str, float]] = [("hint", k, h) for k, h in _hints(order, rng, hint_noise).items()]
    for phase in range(2):
        if phase == 1:  # a share of ranks trade places, and the memory layer's hints follow
            moved = rng.sample(range(n_chunks), int(shuffle_share * n_chunks))
            targets = moved[:]
            rng.shuffle(targets)
            new = order[:]
            for a, b in zip(moved, targets):
                new[b] = order[a]
            order = new
            hints = _hints(order, rng, hint_noise)
            events += [("hint", order[r], hints[order[r]]) for r in moved]
        events += [("get", k, 0.0) for k in rng.choices(order, weights, k=n_requests // 2)]
    return Trace(sizes, events)


def synthetic_chunk(key: str, n_tokens: int, width: int = 8) -> ChunkKV:
    """A small chunk of the right token count (bytes ∝ tokens), for replaying traces fast."""
    return ChunkKV(key=key, tokens=tuple(range(n_tokens)), k=torch.zeros(1, 1, n_tokens, width),
                   v=torch.zeros(1, 1, n_tokens, width))


def replay(store, trace: Trace, make_chunk=synthetic_chunk) -> dict[str, float]:  # noqa: ANN001
    """Get every requested chunk; on a miss compute (make) and put it. Returns hit rates."""
    hits = lookups = saved = wanted = 0
    for kind, key, value in trace.events:
        if kind == "hint":
            store.set_reuse(key, value)
            continue
        n = trace.sizes[key]
        lookups, wanted = lookups + 1, wanted + n
        if store.get(key) is not None:
            hits, saved = hits + 1, saved + n
        else:
            store.put(make_chunk(key, n))
    return {"hit_rate": hits / lookups, "token_hit_rate": saved / wanted}
