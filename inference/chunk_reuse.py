"""A chunk's KV computed once, alone, and placed at any position of a later prompt.

Usage::

    kv = compute_chunk_kv(model, tokens, key)    # the chunk alone, at positions 0..n-1
    place_chunk(model, cache, kv, start=137)     # K rotated to positions 137..137+n-1, V copied

Position convention: keys are stored **after RoPE, at positions 0..n-1** (``meta["rope_start"]
= 0``), and moved by rotating every key by the same angle θ_i·Δ, Δ = new start − 0. Why this
rather than storing K before RoPE:

- RoPE rotations compose exactly (R(a)·R(Δ) = R(a+Δ)), so a move is one complex multiply by a
  single rotation shared by all tokens — the same cost as rotating pre-RoPE keys at use;
- the chunk is produced by the model's ordinary forward (which writes post-RoPE keys into the
  static cache), so the model needs no second code path to capture pre-RoPE keys;
- a chunk used at position 0 needs no rotation at all.

``tests/inference/test_chunk_reuse.py`` checks that a moved K equals K computed at the new position.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from inference.chunk_context import ROOT
from inference.chunk_kv import ChunkKV
from inference.kv_cache import KVCache
from inference.model import Transformer, apply_rope

LAYOUT = "post-rope"


@torch.inference_mode()
def compute_chunk_kv(model: Transformer, tokens: Sequence[int], key: str) -> ChunkKV:
    """Prefill ``tokens`` alone from position 0 and return every layer's K (after RoPE) and V."""
    cache = model.new_cache(len(tokens))
    model(torch.tensor([list(tokens)]), 0, cache)
    k = torch.cat(cache.k)  # [L, H_kv, n, D]: batch 1 per layer, stacked on the batch dim
    v = torch.cat(cache.v)
    return ChunkKV(key=key, tokens=tuple(tokens), k=k, v=v, meta={"rope_start": 0, "layout": LAYOUT, "context": ROOT})


def chunk_in_context(cache: KVCache, key: str, tokens: Sequence[int], start: int, context: str,
                     approx: bool = False) -> ChunkKV:
    """A copy of the KV that a prefill wrote for ``tokens`` at ``start``.. after ``context``
    (``inference.chunk_context``); ``approx`` when an earlier position held lossy KV."""
    end = start + len(tokens)
    k = torch.cat([k[:, :, start:end] for k in cache.k])  # [L, H_kv, n, D]: copies
    v = torch.cat([v[:, :, start:end] for v in cache.v])
    meta = {"rope_start": start, "layout": LAYOUT, "context": context, **({"approx": True} if approx else {})}
    return ChunkKV(key=key, tokens=tuple(tokens), k=k, v=v, meta=meta)


def rope_shift(k: torch.Tensor, rot_delta: torch.Tensor) -> torch.Tensor:
    """Move post-RoPE keys by Δ positions. k: [..., T, D]; rot_delta: [1, D/2] = rotation of Δ."""
    return apply_rope(k, rot_delta)


def shift_rotation(model: Transformer, delta: int) -> torch.Tensor:
    """[1, D/2] complex rotation by ``delta`` positions (negative: the conjugate)."""
    rot = model.rotations(abs(delta) + 1)[abs(delta) : abs(delta) + 1]
    return rot if delta >= 0 else rot.conj()


def place_chunk(model: Transformer, cache: KVCache, chunk: ChunkKV, start: int) -> None:
    """Write ``chunk``'s K (rotated to positions start..) and V into ``cache`` (batch row 0)."""
    assert chunk.meta.get("layout", LAYOUT) == LAYOUT, f"unknown chunk layout {chunk.meta.get('layout')}"
    delta = start - int(chunk.meta.get("rope_start", 0))
    k = rope_shift(chunk.k, shift_rotation(model, delta)) if delta else chunk.k  # [L, H_kv, n, D]
    end = start + chunk.n_tokens
    for layer in range(len(cache.k)):
        cache.k[layer][0, :, start:end] = k[layer]
        cache.v[layer][0, :, start:end] = chunk.v[layer]
