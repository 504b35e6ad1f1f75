"""Attention observers: called by every layer (``KVCache.observer``) to score cached tokens.

- :class:`WindowQueries` (SnapKV): keeps the last ``window`` queries of each layer; at eviction
  time the score of a key is the attention those queries give it, summed over the window and
  over the query heads that share its KV head, then average-pooled (kernel 5).
- :class:`AccumulatedAttention` (H2O): adds up, for every key, the attention every query has
  given it since it entered the cache.

Both work on cache slots; :meth:`compact` follows the cache when it is compacted. Batch 1.
"""
from __future__ import annotations

from typing import Protocol

import torch

from inference.kv_evict.select import pool_scores


class AttentionObserver(Protocol):
    def observe(self, layer: int, q: torch.Tensor, k_all: torch.Tensor, start: int) -> None:
        """q: [1, H, T, D] at slots start..start+T-1 (after RoPE); k_all: [1, H_kv, start+T, D]."""

    def scores(self, layer: int, k_all: torch.Tensor) -> torch.Tensor:
        """[H_kv, S] importance of the S cached keys (higher is kept)."""

    def compact(self, keep: torch.Tensor) -> None:
        """The cache kept slots ``keep``: [L, H_kv, target]."""


def attention_probs(q: torch.Tensor, k: torch.Tensor, first_slot: int) -> torch.Tensor:
    """Causal softmax(q k^T / sqrt(D)) per KV group: q: [H, T, D] at slots first_slot..,
    k: [H_kv, S, D] -> summed over queries and the heads of a group: [H_kv, S] fp32."""
    h, t, d = q.shape
    h_kv, s, _ = k.shape
    qg = q.float().reshape(h_kv, h // h_kv * t, d)  # query head i reads KV head i // (H / H_kv)
    logits = (qg @ k.float().transpose(-1, -2)) * d**-0.5  # [H_kv, G*T, S]
    q_slot = (first_slot + torch.arange(t)).repeat(h // h_kv)  # [G*T]
    logits.masked_fill_(torch.arange(s)[None, :] > q_slot[:, None], float("-inf"))
    return logits.softmax(-1).sum(1)


class WindowQueries:
    """SnapKV's observation window."""

    def __init__(self, n_layers: int, window: int = 32, kernel: int = 5):
        self.window, self.kernel = window, kernel
        self.q: list[torch.Tensor | None] = [None] * n_layers  # [H, n, D] queries of the last n slots

    def observe(self, layer: int, q: torch.Tensor, k_all: torch.Tensor, start: int) -> None:
        prev = self.q[layer]
        new = q[0].float()
        self.q[layer] = (new if prev is None else torch.cat([prev, new], dim=1))[:, -self.window :]

    def scores(self, layer: int, k_all: torch.Tensor) -> torch.Tensor:
        q = self.q[layer]
        s = k_all.shape[-2]
        if q is None:
            return torch.zeros(k_all.shape[-3], s)
        # the stored queries are those of the last q.shape[1] slots
        return pool_scores(attention_probs(q, k_all[0], s - q.shape[1]), self.kernel)

    def compact(self, keep: torch.Tensor) -> None:
        self.q = [None] * len(self.q)  # a fresh window fills from the next tokens


class AccumulatedAttention:
    """H2O's heavy-hitter statistics: acc[layer]: [H_kv, max_len]."""

    def __init__(self, n_layers: int, n_kv_heads: int, max_len: int, block: int = 256):
        self.acc = [torch.zeros(n_kv_heads, max_len) for _ in range(n_layers)]
        self.block = block  # query rows per softmax during prefill, to bound memory

    def observe(self, layer: int, q: torch.Tensor, k_all: torch.Tensor, start: int) -> None:
        t = q.shape[2]
        for i in range(0, t, self.block):
            end = min(t, i + self.block)
            keys = k_all[0, :, : start + end]
            self.acc[layer][:, : start + end] += attention_probs(q[0, :, i:end], keys, start + i)

    def scores(self, layer: int, k_all: torch.Tensor) -> torch.Tensor:
        return self.acc[layer][:, : k_all.shape[-2]]

    def compact(self, keep: torch.Tensor) -> None:
        for layer, acc in enumerate(self.acc):
            kept = acc.gather(1, keep[layer])
            acc.zero_()
            acc[:, : kept.shape[1]] = kept
