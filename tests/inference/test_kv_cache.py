"""Static KV cache: in-place writes at absolute positions, views of the valid prefix, limits."""
from __future__ import annotations

import pytest
import torch

from inference.errors import ContextOverflow
from inference.kv_cache import KVCache
from inference.model import TINY_CONFIG


def test_update_writes_in_place_and_returns_prefix_views() -> None:
    cache = KVCache.allocate(TINY_CONFIG, max_len=8)
    k0, v0 = torch.ones(1, 2, 3, 32), 2 * torch.ones(1, 2, 3, 32)
    storage = cache.k[1].data_ptr()
    k, v = cache.update(1, 0, k0, v0)
    assert k.shape == (1, 2, 3, 32) and torch.equal(v, v0)
    k, _ = cache.update(1, 3, 3 * torch.ones(1, 2, 1, 32), torch.zeros(1, 2, 1, 32))
    assert k.shape[2] == 4 and k[0, 0, :, 0].tolist() == [1, 1, 1, 3]
    assert cache.k[1].data_ptr() == storage  # no reallocation
    assert cache.k[0].abs().sum() == 0  # other layers untouched


def test_limits() -> None:
    with pytest.raises(ContextOverflow):
        KVCache.allocate(TINY_CONFIG, max_len=TINY_CONFIG.context_length + 1)
    cache = KVCache.allocate(TINY_CONFIG, max_len=4)
    with pytest.raises(ContextOverflow):
        cache.update(0, 3, torch.zeros(1, 2, 2, 32), torch.zeros(1, 2, 2, 32))


def test_truncate_rewinds_length() -> None:
    cache = KVCache.allocate(TINY_CONFIG, max_len=4, dtype=torch.bfloat16)
    cache.length = 4
    cache.truncate(2)
    assert cache.length == 2 and cache.dtype == torch.bfloat16 and cache.max_len == 4
