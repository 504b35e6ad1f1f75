"""The smallest ChunkStore: a dict in RAM, unbounded, for tests, benchmarks and embedded use.

Usage: ``engine = LocalEngine(chunk_store=MemoryChunkStore())``. The tiered store (RAM → disk →
Redis, with eviction) implements the same :class:`inference.chunk_kv.ChunkStore` protocol.
"""
from __future__ import annotations

from inference.chunk_kv import ChunkKV


class MemoryChunkStore:
    """Keeps every chunk until discarded; ``hits``/``misses`` count ``get`` calls."""

    def __init__(self) -> None:
        self._chunks: dict[str, ChunkKV] = {}
        self.reuse: dict[str, float] = {}
        self.pinned: set[str] = set()
        self.hits = self.misses = 0

    def get(self, key: str) -> ChunkKV | None:
        chunk = self._chunks.get(key)
        if chunk is None:
            self.misses += 1
        else:
            self.hits += 1
        return chunk

    def put(self, chunk: ChunkKV, *, reuse: float | None = None) -> None:
        self._chunks[chunk.key] = chunk
        if reuse is not None:
            self.reuse[chunk.key] = reuse

    def pin(self, key: str, pinned: bool = True) -> None:
        (self.pinned.add if pinned else self.pinned.discard)(key)

    def set_reuse(self, key: str, reuse: float) -> None:
        self.reuse[key] = reuse

    def discard(self, key: str) -> None:
        self._chunks.pop(key, None)
        self.reuse.pop(key, None)
        self.pinned.discard(key)

    def clear(self) -> None:
        """Drop every chunk (benchmarks: one workload's chunks at a time)."""
        for key in list(self._chunks):
            self.discard(key)

    def __len__(self) -> int:
        return len(self._chunks)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._chunks.values())
