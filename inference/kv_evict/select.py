"""Which cached positions to keep under a budget: pure functions over scores, no model.

Every policy keeps ``n_sink`` first slots (attention sinks: StreamingLLM found the first few
tokens soak up attention whatever they say) and the ``n_recent`` last slots; the rest of the
budget goes to the middle slots with the highest scores, chosen per layer and per KV head. With
no scores it is StreamingLLM: sinks plus the most recent slots. Returned slot indices are sorted,
so the compacted cache keeps the order of positions (the causal mask over slots stays valid).

Usage: ``keep = select_keep(length=300, target=192, n_sink=4, n_recent=32, scores=s)`` with
``s``: [L, H_kv, 300] -> keep: [L, H_kv, 192] long.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from inference.errors import InvalidParams


def select_keep(length: int, target: int, n_layers: int, n_heads: int, n_sink: int = 4, n_recent: int = 32,
                scores: torch.Tensor | None = None) -> torch.Tensor:
    """Slots to keep: [n_layers, n_heads, min(target, length)], sorted ascending per row."""
    if target <= 0:
        raise InvalidParams("the eviction target must keep at least one slot")
    if target >= length:  # nothing to evict: the identity, so budget >= length changes nothing
        return torch.arange(length).expand(n_layers, n_heads, length).clone()
    n_sink = min(n_sink, target)
    if scores is None:  # StreamingLLM: sinks + the most recent
        slots = torch.cat([torch.arange(n_sink), torch.arange(length - (target - n_sink), length)])
        return slots.expand(n_layers, n_heads, target).clone()
    assert scores.shape == (n_layers, n_heads, length), f"scores {tuple(scores.shape)}"
    n_recent = min(n_recent, target - n_sink)
    middle = scores[..., n_sink : length - n_recent]  # [L, H, M] candidates
    picked = middle.topk(target - n_sink - n_recent, dim=-1).indices + n_sink
    forced = torch.cat([torch.arange(n_sink), torch.arange(length - n_recent, length)])
    keep = torch.cat([forced.expand(n_layers, n_heads, -1), picked], dim=-1)
    return keep.sort(dim=-1).values


def pool_scores(scores: torch.Tensor, kernel: int) -> torch.Tensor:
    """Average-pool along the last axis (SnapKV keeps neighbours of important tokens too)."""
    if kernel <= 1:
        return scores
    shape = scores.shape
    flat = scores.reshape(-1, 1, shape[-1])
    return F.avg_pool1d(flat, kernel, stride=1, padding=kernel // 2, count_include_pad=False).reshape(shape)
