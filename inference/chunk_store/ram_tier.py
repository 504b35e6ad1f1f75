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
        self._chunks[chunk.key] = chunk
        return [self._chunks.pop(v) for v in victims]

    def remove(self, key: str) -> None:
        self.index.remove(key)
        self._chunks.pop(key, None)

    def chunks(self) -> list[ChunkKV]:
        return list(self._chunks.values())
