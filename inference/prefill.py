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
from dataclasses import dataclass, field
from typing import Protocol

import torch

from inference.blend import BlendConfig, blend_prefill
from inference.chunk_context import ROOT, ContextIndex, context_after, is_exact_here, is_lossy, variant_key
from inference.chunk_kv import ChunkKV, ChunkStore, chunk_key
from inference.chunk_reuse import chunk_in_context, compute_chunk_kv, place_chunk
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
    """Prefix from the kept cache or the prefix cache, then each chunk whose KV was stored after
    exactly the same preceding segments at the same position (Cache-Craft; exact, no recompute);
    from the first chunk without such KV on ("the tail"): prefilled in full when it holds at most
    ``blend.exact_tail_tokens`` chunk tokens (and then stored in context for the next prompt),
    else each chunk's KV from the store (computed alone and stored on a miss), placed at its
    position and fixed up by selective recompute with the suffix."""

    def __init__(self, model: Transformer, segments: TokenSegments, store: ChunkStore, model_id: str,
                 quant: str, prefix_cache: PrefixCache | None = None, tenant: str = "",
                 blend: BlendConfig | None = None, index: ContextIndex | None = None):
        assert segments.chunks, "a prompt without chunks is a PlainPrefill"
        self.model, self.segments, self.store = model, segments, store
        self.model_id, self.quant, self.prefix_cache, self.tenant = model_id, quant, prefix_cache, tenant
        self.blend = blend or BlendConfig()
        self.index = index
        self.ids = segments.ids
        self.keys = [chunk_key(model_id, quant, c, tenant) for c in segments.chunks]

    def __call__(self, cache: KVCache, have: int, stats: CacheStats) -> Prefilled:
        seg, n, p = self.segments, len(self.ids), len(self.segments.prefix)
        stats.prompt_tokens = n
        # kept positions and prefix-cache blocks are exact (only exact KV is ever kept or saved)
        have = _from_prefix_cache(self.prefix_cache, self.ids, cache, self.tenant, have, n - 1)
        stats.prefix_hit_tokens = have
        walk = self._restore(cache, max(have, p), stats)
        if have < p:
            if walk.frontier == p:  # nothing restored: the prefix's rest joins the tail's forward
                walk.frontier = have
            else:  # exact chunks follow it: it must be in the cache before the tail attends to it
                self.model(torch.tensor([list(seg.prefix[have:])]), have, cache)
        tail_chunk_tokens = walk.chunks_end - max(walk.frontier, p)
        if tail_chunk_tokens <= self.blend.exact_tail_tokens:
            logits = self._prefill_tail(cache, walk, stats)
            exact = n if walk.approx_at is None else walk.approx_at
        else:
            logits = self._blend_tail(cache, walk, stats)
            exact = max(walk.frontier, p) if walk.approx_at is None else walk.approx_at
        stats.prefilled_tokens = n - stats.prefix_hit_tokens - stats.chunk_reused_tokens - stats.chunk_computed_tokens
        return Prefilled(logits, exact)

    def _restore(self, cache: KVCache, frontier: int, stats: CacheStats) -> _Walk:
        """Place every leading chunk that has exact in-context KV; stop at the first without."""
        seg = self.segments
        walk = _Walk(pos=len(seg.prefix), frontier=frontier, chunks_end=len(self.ids) - len(seg.suffix))
        ctx = context_after(ROOT, seg.prefix) if seg.prefix else ROOT
        for j, tokens in enumerate(seg.chunks):
            walk.contexts.append(ctx)
            end = walk.pos + len(tokens)
            if end > walk.frontier:
                kv = self.store.get(variant_key(self.keys[j], ctx)) if self.blend.exact_context else None
                if not is_exact_here(kv, tokens, ctx, walk.pos):
                    return walk
                place_chunk(self.model, cache, kv, walk.pos)
                stats.chunk_reused_tokens += end - walk.frontier
                stats.chunk_exact_tokens += end - walk.frontier
                if is_lossy(kv) and walk.approx_at is None:
                    walk.approx_at = walk.pos
                walk.frontier = end
            walk.first_tail, walk.pos = j + 1, end
            ctx = context_after(ctx, tokens)
        return walk

    def _prefill_tail(self, cache: KVCache, walk: _Walk, stats: CacheStats) -> torch.Tensor:
        """Everything after the exact part in full; the tail's chunks are then stored in context."""
        start = min(walk.frontier, len(self.ids) - 1)  # the last token is fed for its logits
        logits = self.model(torch.tensor([self.ids[start:]]), start, cache)[0, -1]
        pos, approx = walk.pos, walk.approx_at is not None
        for j in range(walk.first_tail, len(self.segments.chunks)):
            tokens, ctx = self.segments.chunks[j], walk.contexts[j] if j < len(walk.contexts) else None
            if ctx is None:  # past where the walk stopped: extend the chain
                ctx = context_after(walk.contexts[-1], self.segments.chunks[j - 1])
                walk.contexts.append(ctx)
            key = variant_key(self.keys[j], ctx)
            self.store.put(chunk_in_context(cache, key, tokens, pos, ctx, approx))
            stats.chunk_stored_tokens += len(tokens)
            if self.index is not None:
                self.index.add(key, self.keys[: j + 1])
            pos += len(tokens)
        return logits

    def _blend_tail(self, cache: KVCache, walk: _Walk, stats: CacheStats) -> torch.Tensor:
        """Chunks after the exact part from the store (moved by RoPE), blended with the suffix."""
        seg, start = self.segments, walk.frontier
        cached = torch.zeros(len(self.ids) - start, dtype=torch.bool)
        force = torch.zeros_like(cached)
        pos = walk.pos
        for j in range(walk.first_tail, len(seg.chunks)):
            tokens = seg.chunks[j]
            if pos >= start:  # a chunk partly held already (prefix-cache blocks) is recomputed in full
                place_chunk(self.model, cache, self._chunk(j, stats), pos)
                cached[pos - start : pos - start + len(tokens)] = True
                force[pos - start : pos - start + min(self.blend.sink_tokens, len(tokens))] = True
            pos += len(tokens)
        logits, stats.recomputed_tokens = blend_prefill(self.model, cache, torch.tensor([self.ids[start:]]), start,
                                                        cached, self.blend, force)
        return logits[0, -1]

    def _chunk(self, j: int, stats: CacheStats) -> ChunkKV:
        tokens, key = self.segments.chunks[j], self.keys[j]
        kv = self.store.get(key)
        if kv is not None and kv.tokens == tuple(tokens):
            stats.chunk_reused_tokens += len(tokens)
            return kv
        kv = compute_chunk_kv(self.model, tokens, key)
        self.store.put(kv)
        stats.chunk_computed_tokens += len(tokens)
        return kv


@dataclass
class _Walk:
    """Where the exact part of a segmented prompt ends."""

    pos: int  # start of chunk ``first_tail`` (the first not restored)
    frontier: int  # positions [0, frontier) hold exact (or lossy-codec) KV
    chunks_end: int  # position after the last chunk
    first_tail: int = 0
    approx_at: int | None = None  # first position holding lossy KV
    contexts: list[str] = field(default_factory=list)  # context of each chunk walked so far
