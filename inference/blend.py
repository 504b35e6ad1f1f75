"""Selective recompute (CacheBlend): fix up reused chunk KV by recomputing the tokens that need it.

Usage::

    # cache positions < start: exact (prefix); start..start+T-1: chunk KV placed where cached[i]
    logits, n_recomputed = blend_prefill(model, cache, tokens, start, cached, BlendConfig(ratio=0.15))

Each chunk's KV was computed alone, so its tokens never attended to what precedes them in this
prompt. The fix-up, layer by layer over the T tokens after the prefix:

1. layers before ``check_layer`` run in full for every token, writing fresh K/V;
2. at ``check_layer`` every token's fresh K and V are computed and compared with the cached
   ones (squared L2 over heads, ``measure`` = "k", "v" or "kv" for their sum, each normalised by
   its mean); the top ``ratio`` of cached tokens by deviation, plus every uncached token, are
   kept; the other tokens keep their cached K/V for this and every later layer;
3. from there on only the kept tokens run — in one batched forward per layer — attending with
   the true causal mask (query at position p sees every key at positions <= p, reused or fresh)
   and writing their fresh K/V into the cache.

With ``check_layer = 1`` layer 0 is context-free (its K/V depend only on token and position), so
ratio 0 reproduces naive concatenation of the reused caches and ratio 1 reproduces a full
prefill; both are tested on the real model in fp32.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from inference.errors import InvalidParams
from inference.kv_cache import KVCache
from inference.model import Transformer, attention

MEASURES = ("k", "v", "kv")
QUERY_RUNS, QUERY_RUN_ROWS = 4, 64  # selected queries attend in up to 4 runs of 64+ (_attend_selected)


@dataclass(frozen=True)
class BlendConfig:
    """How much of the reused chunk KV is recomputed. ``ratio`` in [0, 1] of the cached tokens."""

    ratio: float = 0.15
    check_layer: int = 1
    measure: str = "k"
    # each chunk's first tokens, recomputed before any chosen by deviation (within the ratio): a
    # chunk computed alone made them its attention sinks, which they are not in the prompt
    sink_tokens: int = 0
    # Cache-Craft: a chunk after exactly the segments it was computed after, at the same position,
    # is reused as stored, with no recompute (False: every chunk goes through the blend)
    exact_context: bool = True
    # chunk tokens after the exact part of the prompt: up to this many are prefilled in full
    # (exact, and stored in context for the next prompt) instead of placed and blended
    exact_tail_tokens: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise InvalidParams(f"ratio must be in [0, 1], got {self.ratio}")
        if self.sink_tokens < 0 or self.exact_tail_tokens < 0:
            raise InvalidParams("sink_tokens and exact_tail_tokens must be >= 0")
        if self.check_layer < 0:
            raise InvalidParams("check_layer must be >= 0")
        if self.measure not in MEASURES:
            raise InvalidParams(f"measure must be one of {MEASURES}, got {self.measure!r}")


@torch.inference_mode()
def blend_prefill(model: Transformer, cache: KVCache, tokens: torch.Tensor, start: int,
                  cached: torch.Tensor, cfg: BlendConfig,
                  force: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """tokens: [1, T] at positions start..; cached: bool [T] (True where the cache holds reused KV);
    force: bool [T], cached tokens recomputed first (e.g. chunks' sink tokens), within the ratio.

    Returns (logits of the last token [1, 1, V], number of cached tokens recomputed). The last
    token is always computed (its logits start generation).
    """
    t = tokens.shape[1]
    assert cached.shape == (t,) and t >= 1
    cached = cached.clone()
    cached[-1] = False  # the last token's hidden state gives the logits
    act, check = model.act_dtype, min(cfg.check_layer, len(model.blocks) - 1)
    sel = torch.arange(t)  # indices (into the T tokens) still being computed
    h = model.embed(tokens)  # [1, T, dim]
    model.threads_for(t)
    n_recomputed = int(cached.sum())
    masks: list[tuple[slice, int, torch.Tensor]] | None = None  # once the selection is made
    for i, block in enumerate(model.blocks):
        q, k, v = block.project(h, model.rotations(start + t)[start + sel], act)
        if i == check and cfg.ratio < 1.0 and bool(cached.any()):
            keep = _select(cache, i, start, k, v, cached, cfg, force)  # bool over sel (== all T here)
            n_recomputed = int((keep & cached).sum())
            sel, h, q, k, v = sel[keep], h[:, keep], q[:, :, keep], k[:, :, keep], v[:, :, keep]
            model.threads_for(len(sel))  # the later layers run only the selected rows
        if len(sel) == t:  # every token: the model's own prefill path (same numerics as a full prefill)
            k_all, v_all = cache.update(i, start, k, v)
            o = attention(q, k_all, v_all, start, act)
        else:
            masks = masks or _causal_masks(start + sel, act)
            o = _attend_selected(cache, i, start + sel, q, k, v, act, masks)
        h = block.mix(h, o, act)
    cache.length = start + t
    return model.logits(h[:, -1:]), n_recomputed


def _causal_masks(pos: torch.Tensor, act: torch.dtype) -> list[tuple[slice, int, torch.Tensor]]:
    """Split the selected queries (ascending positions ``pos``) into runs of at least
    ``QUERY_RUN_ROWS`` (at most ``QUERY_RUNS``); for each: its rows, the keys it needs (its last
    position + 1) and its additive causal mask [rows, keys] in ``act``. Built once per blend:
    every layer after the check uses them."""
    runs = max(1, min(QUERY_RUNS, len(pos) // QUERY_RUN_ROWS))
    out = []
    for idx in torch.arange(len(pos)).tensor_split(runs):
        rows, end = slice(int(idx[0]), int(idx[-1]) + 1), int(pos[idx[-1]]) + 1
        visible = torch.arange(end)[None, :] <= pos[rows, None]
        out.append((rows, end, torch.zeros(visible.shape, dtype=act).masked_fill_(~visible, float("-inf"))))
    return out


def _attend_selected(cache: KVCache, layer: int, pos: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                     v: torch.Tensor, act: torch.dtype, masks: list[tuple[slice, int, torch.Tensor]]) -> torch.Tensor:
    """Write the selected rows' K/V at ``pos`` and attend with the true causal mask.

    The flash kernel computes every block of keys it is given, masked or not, so each run of
    queries gets only the keys up to its last position (4 runs: about 5/8 of the key blocks).
    Each call also costs ~0.4 ms over 1,900 keys however few its queries, hence runs of 64+."""
    cache.k[layer][:, :, pos] = k
    cache.v[layer][:, :, pos] = v.to(cache.dtype)
    end = masks[-1][1]
    k_all, v_all = cache.k[layer][:, :, :end].to(act), cache.v[layer][:, :, :end].to(act)
    q = q.to(act)
    outs = [F.scaled_dot_product_attention(q[:, :, rows], k_all[:, :, :e], v_all[:, :, :e], attn_mask=m,
                                           enable_gqa=True) for rows, e, m in masks]
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


def _select(cache: KVCache, layer: int, start: int, k: torch.Tensor, v: torch.Tensor,
            cached: torch.Tensor, cfg: BlendConfig, force: torch.Tensor | None = None) -> torch.Tensor:
    """Bool [T]: uncached tokens plus the top ``ratio`` of cached ones: the ``force``d first (as
    many as the ratio allows), then the rest by K/V deviation."""
    t = cached.shape[0]
    old_k = cache.k[layer][:, :, start : start + t]  # [1, H_kv, T, D]
    old_v = cache.v[layer][:, :, start : start + t]
    dev = torch.zeros(t)
    if "k" in cfg.measure:
        dev += _normalised((k.float() - old_k).pow(2).sum((0, 1, 3)), cached)
    if "v" in cfg.measure:
        dev += _normalised((v.float() - old_v).pow(2).sum((0, 1, 3)), cached)
    n_top = round(cfg.ratio * int(cached.sum()))
    keep = ~cached
    if n_top:
        dev[~cached] = float("-inf")
        if force is not None:
            forced = (force & cached).nonzero().flatten()[:n_top]  # earliest first when over budget
            dev[forced] = float("inf")
        keep[dev.topk(n_top).indices] = True
    return keep


def _normalised(dev: torch.Tensor, cached: torch.Tensor) -> torch.Tensor:
    """Deviation divided by its mean over cached tokens, so that K and V weigh alike in "kv"."""
    return dev / dev[cached].mean().clamp_min(1e-12)
