"""Static KV cache: preallocated keys and values for every layer.

Usage: ``cache = KVCache.allocate(cfg, max_len=640, dtype=torch.bfloat16)``;
``k_all, v_all = cache.update(layer, start, k_new, v_new)``.

Keys are stored after RoPE, at their absolute positions. The cache is "static": tensors are
allocated once for ``max_len`` positions and written in place, so decode does no allocation.

In-sequence eviction (inference.kv_evict) compacts the cache, after which a slot is no longer its
position: the token written at slot s sits at position s + ``pos_offset`` (kept keys keep the
rotation of their original position). ``observer``, when set, sees every layer's queries and
keys to score tokens for eviction. Both default to off (slot = position, no observer).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from inference.errors import ContextOverflow
from inference.gguf_file import ModelConfig


@dataclass
class KVCache:
    """Per-layer K and V of shape [B, H_kv, max_len, D]; ``length`` is how many positions are valid."""

    k: list[torch.Tensor]
    v: list[torch.Tensor]
    length: int = 0
    pos_offset: int = 0  # position of slot s is s + pos_offset (non-zero only after eviction)
    observer: Any = None  # inference.kv_evict.observers.AttentionObserver, or None

    @classmethod
    def allocate(cls, cfg: ModelConfig, max_len: int, dtype: torch.dtype = torch.float32, batch: int = 1) -> KVCache:
        if max_len > cfg.context_length:
            raise ContextOverflow(f"{max_len} positions exceed the model context of {cfg.context_length}")
        shape = (batch, cfg.n_kv_heads, max_len, cfg.head_dim)
        k = [torch.zeros(shape, dtype=dtype) for _ in range(cfg.n_layers)]
        v = [torch.zeros(shape, dtype=dtype) for _ in range(cfg.n_layers)]
        return cls(k, v)

    @property
    def max_len(self) -> int:
        return self.k[0].shape[2]

    @property
    def dtype(self) -> torch.dtype:
        return self.k[0].dtype

    def update(
        self, layer: int, start: int, k_new: torch.Tensor, v_new: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k_new, v_new: [B, H_kv, T, D] at ``start``; return views [B, H_kv, start+T, D]."""
        end = start + k_new.shape[2]
        if end > self.max_len:
            raise ContextOverflow(f"position {end} is past the cache of {self.max_len}")
        self.k[layer][:, :, start:end] = k_new
        self.v[layer][:, :, start:end] = v_new
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def truncate(self, length: int) -> None:
        """Forget positions >= ``length`` (they are overwritten by the next update)."""
        assert 0 <= length <= self.max_len
        self.length = length
