"""A memory chunk's KV cache and the store interface the engine reads and writes it through.

A chunk is a piece of prompt text (one note or fact block) tokenised on its own. Its KV is keyed
by (model id, quantization, chunk tokens) only — never by where it sits in a prompt or what is
next to it — so it can be reused at any position. The engine (producer/consumer) and the tiered
chunk store (RAM → disk → Redis) meet at this file.
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


def chunk_key(model_id: str, quant: str, tokens: Sequence[int], salt: str = "") -> str:
    """Position-independent key of a chunk's KV: a hex sha256 of model, quantization and token ids.
    ``salt`` (the tenant) keeps tenants' caches apart: identical text in two tenants gives two
    entries, so a cache hit's timing can never tell one tenant what another has stored."""
    h = hashlib.sha256()
    for part in (model_id, quant, *((salt,) if salt else ())):
        raw = part.encode()
        h.update(struct.pack("<I", len(raw)) + raw)
    h.update(struct.pack(f"<{len(tokens)}i", *tokens))
    return h.hexdigest()


@dataclass
class ChunkKV:
    """K and V of one chunk for every layer: tensors of shape [n_layers, n_kv_heads, n_tokens, head_dim].

    ``meta`` holds small JSON-able facts the engine needs to reuse the cache (e.g. the position
    convention or the hash of the chunks that preceded it when it was computed).
    """

    key: str
    tokens: tuple[int, ...]
    k: torch.Tensor
    v: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() + self.v.numel() * self.v.element_size()


class ChunkStore(Protocol):
    """Where chunk caches live. ``reuse`` is the caller's predicted reuse probability in [0, 1]
    (the memory layer passes a note's retention); pinned chunks are never evicted."""

    def get(self, key: str) -> ChunkKV | None: ...

    def put(self, chunk: ChunkKV, *, reuse: float | None = None) -> None: ...

    def pin(self, key: str, pinned: bool = True) -> None: ...

    def set_reuse(self, key: str, reuse: float) -> None: ...

    def discard(self, key: str) -> None: ...
