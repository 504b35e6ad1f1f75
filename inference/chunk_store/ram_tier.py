"""RAM tier: chunks kept as tensors in this process, under a byte budget (tensor bytes)."""
from __future__ import annotations

from inference.chunk_kv import ChunkKV
from inference.chunk_store.budget import BudgetIndex
from inference.chunk_store.counters import TierCounters
from inference.chunk_store.policies import EntryStats, EvictionPolicy


class RamTier:
    """Usage: ``evicted = ram.put(chunk, now)``; ``ram.get(key, now)``."""

    name = "ram"

    def __init__(self, budget: int, policy: EvictionPolicy):
        self.index = BudgetIndex(budget, policy)
        self.counters = TierCounters()
        self._chunks: dict[str, ChunkKV] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._chunks

    def entry(self, key: str) -> EntryStats | None:
        return self.index.entries.get(key)

    def get(self, key: str, now: int) -> ChunkKV | None:
        chunk = self._chunks.get(key)
        if chunk is not None:
            self.index.touch(key, now)
        return chunk

    def put(self, chunk: ChunkKV, now: int) -> list[ChunkKV] | None:
        """Store ``chunk``; returns the chunks evicted to make room, or None if it was refused."""
        victims = self.index.admit(chunk.key, chunk.nbytes, chunk.n_tokens, now)
        if victims is None:
            self.counters.rejected += 1
            return None
        self.counters.puts += 1
        self.counters.evictions += len(victims)
        self._chunks[chunk.key] = _compact(chunk)
        return [self._chunks.pop(v) for v in victims]

    def remove(self, key: str) -> None:
        self.index.remove(key)
        self._chunks.pop(key, None)

    def chunks(self) -> list[ChunkKV]:
        return list(self._chunks.values())


def _compact(chunk: ChunkKV) -> ChunkKV:
    """The chunk itself, unless its tensors are views into larger storage (e.g. slices of a
    KVCache): then a copy, so that the budget counts what is really held."""
    def owned(t):  # noqa: ANN001, ANN202
        return t if t.untyped_storage().nbytes() <= t.numel() * t.element_size() else t.clone()

    k, v = owned(chunk.k), owned(chunk.v)
    if k is chunk.k and v is chunk.v:
        return chunk
    return ChunkKV(chunk.key, chunk.tokens, k, v, dict(chunk.meta))
