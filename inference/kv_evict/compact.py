"""Compact a KVCache in place to the kept slots (per layer and KV head).

Position convention (one for every policy): a kept key keeps the RoPE rotation of its original
absolute position — keys are stored rotated and are never re-rotated — and the next token is
fed at its true position, the number of tokens the conversation has had so far. After
compaction to ``target`` slots the next token goes to slot ``target``, so
``cache.pos_offset = true_next_position - target``. Kept slots stay in position order.
"""
from __future__ import annotations

import torch

from inference.kv_cache import KVCache


def compact(cache: KVCache, keep: torch.Tensor) -> None:
    """keep: [L, H_kv, target] sorted slot indices < cache.length; batch 1."""
    length, target = cache.length, keep.shape[-1]
    next_pos = length + cache.pos_offset
    for layer in range(len(cache.k)):
        idx = keep[layer][None, :, :, None].expand(1, -1, -1, cache.k[layer].shape[-1])
        for store in (cache.k, cache.v):
            kept = store[layer][:, :, :length].gather(2, idx)  # a copy: source and target overlap
            store[layer][:, :, :target] = kept
    cache.length = target
    cache.pos_offset = next_pos - target
    if cache.observer is not None:
        cache.observer.compact(keep)
