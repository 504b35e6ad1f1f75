"""Prefix cache: the KV of full token blocks, shared by every request that starts with them.

Usage::

    pc = PrefixCache(num_blocks=64, block_size=64, model_id=engine.model_id)
    n = pc.load(prompt_ids, cache, tenant="acme")   # copies the longest cached run of blocks
    ...                                            # prefill prompt_ids[n:] at position n
    pc.save(prompt_ids, cache, upto=len(prompt_ids), tenant="acme")  # keep its full blocks

Bookkeeping (keys, reference counts, eviction) is :class:`inference.block_manager.BlockManager`;
this class only keeps one K and one V tensor per slot, [n_layers, n_kv_heads, block_size,
head_dim], in the cache's dtype (fp32), so a hit restores exactly what a prefill wrote. Keys
include the model id and the tenant salt: tenants never read each other's blocks. Only exact KV
may be saved (never the positions of a blended chunk).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from inference.block_manager import BlockManager, block_keys
from inference.kv_cache import KVCache


class PrefixCache:
    """``num_blocks`` blocks of ``block_size`` tokens (tensors allocated when a block is first filled)."""

    def __init__(self, num_blocks: int, block_size: int = 64, model_id: str = ""):
        self.blocks = BlockManager(num_blocks)
        self.block_size = block_size
        self.model_id = model_id
        self._k: dict[int, torch.Tensor] = {}
        self._v: dict[int, torch.Tensor] = {}

    def keys(self, tokens: Sequence[int], tenant: str = "") -> list[str]:
        return block_keys(tokens, self.block_size, (self.model_id, tenant))

    def load(self, tokens: Sequence[int], cache: KVCache, tenant: str = "", have: int = 0) -> int:
        """Copy the cached blocks of ``tokens``' longest cached prefix into ``cache``; return how
        many leading positions they cover. Blocks ending at or before ``have`` (already valid in
        the cache) are not copied."""
        slots = self.blocks.acquire(self.keys(tokens, tenant))
        try:
            bs = self.block_size
            for j, slot in enumerate(slots):
                if (j + 1) * bs > have:
                    _write(cache, j * bs, self._k[slot], self._v[slot])
        finally:
            self.blocks.release(slots)
        return len(slots) * self.block_size

    def save(self, tokens: Sequence[int], cache: KVCache, upto: int, tenant: str = "") -> int:
        """Keep the full blocks of ``tokens[:upto]`` (whose KV sits at cache positions 0..upto-1);
        returns how many blocks were newly filled (fewer when every slot is referenced)."""
        placed = self.blocks.allocate(self.keys(tokens[:upto], tenant))
        bs, n_new = self.block_size, 0
        for j, (slot, new) in enumerate(placed):
            if new:
                self._k[slot] = torch.cat([k[:, :, j * bs : (j + 1) * bs] for k in cache.k])  # [L, H_kv, bs, D]
                self._v[slot] = torch.cat([v[:, :, j * bs : (j + 1) * bs] for v in cache.v])
                n_new += 1
        self.blocks.release([slot for slot, _ in placed])
        return n_new

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for d in (self._k, self._v) for t in d.values())


def _write(cache: KVCache, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
    end = start + k.shape[2]
    for layer in range(len(cache.k)):
        cache.k[layer][0, :, start:end] = k[layer]
        cache.v[layer][0, :, start:end] = v[layer]
