"""Chunk KV recorded with the context it was computed in, so that a repeat of that context is exact.

Usage::

    ctx = context_after(ROOT, prefix_tokens)            # the context of the first chunk
    key = variant_key(chunk_key(model_id, quant, tokens, tenant), ctx)
    kv = store.get(key)
    if is_exact_here(kv, tokens, ctx, pos): place_chunk(model, cache, kv, pos)  # no recompute
    ctx = context_after(ctx, tokens)                    # the context of the next chunk

A chunk's KV depends on every token before it. Computed alone (at positions 0.., context
``ROOT``) it is only an approximation elsewhere, fixed up by selective recompute. Computed inside
a prompt, it is *exactly* what a full prefill writes for the same chunk after the same preceding
tokens at the same position (Cache-Craft's observation; here the rule is identity, not
similarity). So every chunk KV carries ``meta["context"]`` (a chained hash of the preceding
segments' token ids) and ``meta["rope_start"]`` (its first position), and in-context KV is stored
under :func:`variant_key` of the chunk's own key and that context. A prompt whose chunks follow
the same segments as before finds each of them exactly: a chunk-granular prefix cache that needs
no block alignment. A chunk computed alone is the variant of context ``ROOT``, under its plain key.

Segments are hashed with their lengths, so ``[ab][c]`` and ``[a][bc]`` are different contexts:
a different segmentation can only miss, never hit falsely.
"""
from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Sequence

from inference.chunk_kv import ChunkKV

ROOT = ""  # the context of a chunk computed alone, at position 0


def context_after(context: str, tokens: Sequence[int]) -> str:
    """The context that follows segment ``tokens`` placed after ``context``."""
    h = hashlib.sha256(context.encode())
    h.update(struct.pack(f"<I{len(tokens)}i", len(tokens), *tokens))
    return h.hexdigest()


def variant_key(chunk_key: str, context: str) -> str:
    """Store key of a chunk's KV computed in ``context`` (the plain key for ``ROOT``)."""
    if context == ROOT:
        return chunk_key
    return hashlib.sha256(f"{chunk_key}@{context}".encode()).hexdigest()


def is_exact_here(kv: ChunkKV | None, tokens: Sequence[int], context: str, start: int) -> bool:
    """True when ``kv`` is these tokens computed after ``context`` at position ``start``."""
    return (kv is not None and kv.tokens == tuple(tokens) and kv.meta.get("context", ROOT) == context
            and int(kv.meta.get("rope_start", 0)) == start)


def is_lossy(kv: ChunkKV) -> bool:
    """KV that went through a lossy codec (fp16/int8 tiers) or was computed after such KV: reused
    without recompute, but not bit-exact, so never kept as exact prefix."""
    return bool(kv.meta.get("approx")) or kv.meta.get("kv_codec", "raw") != "raw"


class ContextIndex:
    """Which in-context variants depend on a chunk: its own, and those of every chunk that was
    computed after it. Dropping a chunk (its note deleted or edited) drops them all, so no stored
    KV still carries the old text. Bounded: the oldest variants are forgotten first (their KV then
    only ages out of the store under its eviction policy)."""

    def __init__(self, max_variants: int = 65536) -> None:
        self._deps: dict[str, set[str]] = {}  # chunk key -> variant keys that depend on it
        self._variants: dict[str, tuple[str, ...]] = {}  # variant key -> chunk keys it depends on
        self._own: dict[str, set[str]] = {}  # chunk key -> its own variants (one per context)
        self._max = max_variants
        self._lock = threading.Lock()  # engine threads add, note-change callbacks drop

    def add(self, variant: str, depends_on: Sequence[str]) -> None:
        with self._lock:
            self._add(variant, depends_on)

    def drop(self, chunk_key: str) -> set[str]:
        """Forget and return every variant that depends on ``chunk_key``."""
        with self._lock:
            out = set(self._deps.pop(chunk_key, set()))
            for variant in out:
                self._unlink(variant)
            return out

    def variants_of(self, chunk_key: str) -> set[str]:
        """The keys of ``chunk_key``'s own in-context variants."""
        with self._lock:
            return set(self._own.get(chunk_key, ()))

    def _add(self, variant: str, depends_on: Sequence[str]) -> None:
        """``depends_on``: the chunk keys of the context, the variant's own chunk last."""
        self._unlink(variant)
        self._variants[variant] = tuple(depends_on)  # re-added: newest again
        if depends_on:
            self._own.setdefault(depends_on[-1], set()).add(variant)
        for key in depends_on:
            self._deps.setdefault(key, set()).add(variant)
        while len(self._variants) > self._max:
            self._unlink(next(iter(self._variants)))

    def _unlink(self, variant: str) -> None:
        deps = self._variants.pop(variant, ())
        if deps and (own := self._own.get(deps[-1])) is not None:
            own.discard(variant)
            if not own:
                del self._own[deps[-1]]
        for key in deps:
            deps = self._deps.get(key)
            if deps is not None:
                deps.discard(variant)
                if not deps:
                    del self._deps[key]

    def __len__(self) -> int:
        return len(self._variants)
