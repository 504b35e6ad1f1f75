"""Selective recompute (CacheBlend): fix up reused chunk KV by recomputing the tokens that need it.

Usage::

    # cache positions < start: exact (prefix); start..start+T-1: chunk KV placed where cached[i]
    logits, n_recomputed = blend_prefill(model, cache, tokens, start, cached, BlendConfig(ratio=0.15))

Each chunk's KV was computed alone, so its tokens never attended to what precedes them in this
prompt. The fix-up, layer by layer over the T tokens after the prefix:

1. layers before ``check_layer`` run in full for every token, writing fresh K/V;
2. at ``check_layer`` every token's fresh K and V are computed and compared with the cached
   ones (squared L2 over heads, ``measure`` = "k", "v" or "kv" for their sum, each normalised by
   its mean); the top ``widen`` x ``ratio`` of cached tokens by deviation, plus every uncached
   token, are kept; the other tokens keep their cached K/V for this and every later layer;
3. from there on only the kept tokens run — in one batched forward per layer — attending with
   the true causal mask (query at position p sees every key at positions <= p, reused or fresh)
   and writing their fresh K/V into the cache;
4. at ``refine_layer`` (CacheBlend's gradual filtering) the kept cached tokens are ranked again by
   that layer's deviation and narrowed to ``ratio``; the others keep the K/V written so far.

With ``check_layer = 1`` layer 0 is context-free (its K/V depend only on token and position), so
ratio 0 reproduces naive concatenation of the reused caches and ratio 1 reproduces a full
prefill; both are tested on the real model in fp32.

Why the refine step: a deviation measured after more layers has seen more of the prompt and picks
better tokens. bench/kv_reuse.py, 20 HotpotQA questions, int4, ratio 0.15: one selection at layer
1 gave top-1 agreement with a full prefill 0.727 and KL 0.135; 2 x ratio through layers 1-4,
narrowed at layer 5, gives 0.810 and 0.101 for 8% more time to first token. (Every token run to
layer 5 and chosen there did a little better in a scratch study, for 37% more: docs/benchmarks.md.)
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
    # gradual filtering: check_layer keeps widen x ratio of the cached tokens, refine_layer narrows
    # them to ratio (widen 1 or refine_layer <= check_layer: one selection, at check_layer)
    widen: float = 2.0
    refine_layer: int = 5
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
        if self.widen < 1.0:
            raise InvalidParams(f"widen must be >= 1, got {self.widen}")
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
    act = model.act_dtype
    stages = _stages(cfg, len(model.blocks))
    n_cached = int(cached.sum())
    force = torch.zeros_like(cached) if force is None else force & cached
    sel = torch.arange(t)  # indices (into the T tokens) still being computed
    h = model.embed(tokens)  # [1, T, dim]
    model.threads_for(t)
    masks: list[tuple[slice, int, torch.Tensor]] | None = None  # per selection
    for i, block in enumerate(model.blocks):
        q, k, v = block.project(h, model.rotations(start + t)[start + sel], act)
        if i in stages and bool(cached[sel].any()):
            keep = _select(cache, i, start + sel, k, v, cached[sel], round(stages[i] * n_cached), cfg.measure,
                           force[sel])
            sel, h, q, k, v = sel[keep], h[:, keep], q[:, :, keep], k[:, :, keep], v[:, :, keep]
            masks = None
            model.threads_for(len(sel))  # the later layers run only the selected rows
        if len(sel) == t:  # every token: the model's own prefill path (same numerics as a full prefill)
            k_all, v_all = cache.update(i, start, k, v)
            o = attention(q, k_all, v_all, start, act)
        else:
            masks = masks or _causal_masks(start + sel, act)
            o = _attend_selected(cache, i, start + sel, q, k, v, act, masks)
        h = block.mix(h, o, act)
    cache.length = start + t
    return model.logits(h[:, -1:]), int(cached[sel].sum())


def _stages(cfg: BlendConfig, n_layers: int) -> dict[int, float]:
    """Layer -> share of the cached tokens kept from there on (none: every token recomputed)."""
    if cfg.ratio >= 1.0:
        return {}
    check = min(cfg.check_layer, n_layers - 1)
    refine = min(cfg.refine_layer, n_layers - 1)
    if cfg.widen == 1.0 or refine <= check:
        return {check: cfg.ratio}
    return {check: min(1.0, cfg.widen * cfg.ratio), refine: cfg.ratio}


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


def _select(cache: KVCache, layer: int, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            cached: torch.Tensor, n_top: int, measure: str, force: torch.Tensor) -> torch.Tensor:
    """Bool over the rows at cache positions ``pos``: the uncached ones plus ``n_top`` cached ones,
    the ``force``d first (as many as ``n_top`` allows), then the rest by K/V deviation."""
    dev = torch.zeros(len(pos))
    if "k" in measure:
        dev += _normalised((k.float() - cache.k[layer][:, :, pos]).pow(2).sum((0, 1, 3)), cached)
    if "v" in measure:
        dev += _normalised((v.float() - cache.v[layer][:, :, pos]).pow(2).sum((0, 1, 3)), cached)
    n_top = min(n_top, int(cached.sum()))
    keep = ~cached
    if n_top:
        dev[~cached] = float("-inf")
        dev[force.nonzero().flatten()[:n_top]] = float("inf")  # earliest first when over budget
        keep[dev.topk(n_top).indices] = True
    return keep


def _normalised(dev: torch.Tensor, cached: torch.Tensor) -> torch.Tensor:
    """Deviation divided by its mean over cached tokens, so that K and V weigh alike in "kv"."""
    return dev / dev[cached].mean().clamp_min(1e-12)
