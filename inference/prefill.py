"""How a prompt's KV gets into the cache before decoding: plain prefill, or chunk reuse + blend.

Usage (the Generator calls these; LocalEngine builds them)::

    fill = PlainPrefill(model, ids, prefix_cache, tenant)
    fill = SegmentPrefill(model, segments, store, "local/SmolLM2/int4", "int4", prefix_cache, tenant,
                          BlendConfig(ratio=0.15))
    done = fill(cache, have, stats)   # Prefilled(logits [V], exact)

``have`` is how many leading positions the cache already holds for this prompt (kept from the
previous request). ``exact`` is how many leading positions now hold exactly what a full prefill
would have written: only those may be kept for the next request or saved in the prefix cache.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from inference.blend import BlendConfig, blend_prefill
from inference.chunk_kv import ChunkKV, ChunkStore, chunk_key
from inference.chunk_reuse import compute_chunk_kv, place_chunk
from inference.kv_cache import KVCache
from inference.model import Transformer
from inference.prefix_cache import PrefixCache
from inference.segments import CacheStats, TokenSegments


@dataclass
class Prefilled:
    logits: torch.Tensor  # [V] fp32, the next-token logits after the prompt
    exact: int  # leading cache positions holding exact KV


class Prefill(Protocol):
    ids: list[int]  # the whole prompt
    tenant: str

    def __call__(self, cache: KVCache, have: int, stats: CacheStats) -> Prefilled: ...


def _from_prefix_cache(pc: PrefixCache | None, ids: Sequence[int], cache: KVCache, tenant: str,
                       have: int, limit: int) -> int:
    """Positions valid after restoring cached blocks of ``ids``, at most ``limit``."""
    if pc is None:
        return min(have, limit)
    return min(max(have, pc.load(ids, cache, tenant, have)), limit)


class PlainPrefill:
    """The whole prompt prefilled after its longest cached prefix."""

    def __init__(self, model: Transformer, ids: Sequence[int], prefix_cache: PrefixCache | None = None,
                 tenant: str = ""):
        self.model, self.ids, self.prefix_cache, self.tenant = model, list(ids), prefix_cache, tenant

    def __call__(self, cache: KVCache, have: int, stats: CacheStats) -> Prefilled:
        n = len(self.ids)
        # the last token is always fed: its hidden state gives the logits
        have = _from_prefix_cache(self.prefix_cache, self.ids, cache, self.tenant, have, n - 1)
        stats.prompt_tokens, stats.prefix_hit_tokens, stats.prefilled_tokens = n, have, n - have
        logits = self.model(torch.tensor([self.ids[have:]]), have, cache)[0, -1]
        return Prefilled(logits, n)


class SegmentPrefill:
    """Prefix from the prefix cache, chunks from the chunk store (computed alone and stored on a
    miss), placed at their positions and fixed up by selective recompute with the suffix."""

    def __init__(self, model: Transformer, segments: TokenSegments, store: ChunkStore, model_id: str,
                 quant: str, prefix_cache: PrefixCache | None = None, tenant: str = "",
                 blend: BlendConfig | None = None):
        assert segments.chunks, "a prompt without chunks is a PlainPrefill"
        self.model, self.segments, self.store = model, segments, store
        self.model_id, self.quant, self.prefix_cache, self.tenant = model_id, quant, prefix_cache, tenant
        self.blend = blend or BlendConfig()
        self.ids = segments.ids

    def __call__(self, cache: KVCache, have: int, stats: CacheStats) -> Prefilled:
        seg, p = self.segments, len(self.segments.prefix)
        stats.prompt_tokens = len(self.ids)
        # positions past the prefix are rebuilt: kept KV there may come from a blended request
        have = _from_prefix_cache(self.prefix_cache, seg.prefix, cache, self.tenant, min(have, p), p)
        stats.prefix_hit_tokens = have
        if have < p:
            self.model(torch.tensor([list(seg.prefix[have:])]), have, cache)
        pos = p
        for tokens in seg.chunks:
            place_chunk(self.model, cache, self._chunk(tokens, stats), pos)
            pos += len(tokens)
        rest = [t for c in seg.chunks for t in c] + list(seg.suffix)
        cached = torch.tensor([True] * (pos - p) + [False] * len(seg.suffix))
        logits, n_recomputed = blend_prefill(self.model, cache, torch.tensor([rest]), p, cached, self.blend)
        stats.recomputed_tokens = n_recomputed
        stats.prefilled_tokens = (p - have) + len(seg.suffix)
        return Prefilled(logits[0, -1], p)

    def _chunk(self, tokens: Sequence[int], stats: CacheStats) -> ChunkKV:
        key = chunk_key(self.model_id, self.quant, tokens, self.tenant)
        kv = self.store.get(key)
        if kv is not None and kv.tokens == tuple(tokens):
            stats.chunk_reused_tokens += len(tokens)
            return kv
        kv = compute_chunk_kv(self.model, tokens, key)
        self.store.put(kv)
        stats.chunk_computed_tokens += len(tokens)
        return kv
