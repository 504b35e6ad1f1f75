"""Byte-budget bookkeeping shared by the RAM and disk tiers: which entries a tier holds, how many
bytes they take, and which to evict to make room. Pure Python; the tiers own the bytes.

Invariant: ``nbytes <= budget`` after every call. A chunk that cannot fit (larger than the
budget, or the room is held by pinned chunks) is refused rather than over-committing.
"""
from __future__ import annotations

from inference.chunk_store.policies import EntryStats, EvictionPolicy


class BudgetIndex:
    """Usage: ``victims = index.make_room(nbytes, now)``; if not None, drop them, then ``index.add(...)``."""

    def __init__(self, budget: int, policy: EvictionPolicy):
        self.budget, self.policy = budget, policy
        self.entries: dict[str, EntryStats] = {}
        self.nbytes = 0

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def make_room(self, nbytes: int, now: int, incoming: str | None = None) -> list[str] | None:
        """Keys to evict so that ``nbytes`` more fit, lowest priority first; None if impossible.

        ``incoming`` (a key being replaced) is neither a victim nor counted: its bytes are freed.
        """
        free = self.budget - self.nbytes + (self.entries[incoming].nbytes if incoming in self.entries else 0)
        if nbytes > self.budget or free >= nbytes:
            return None if nbytes > self.budget else []
        candidates = sorted((e for e in self.entries.values() if not e.pinned and e.key != incoming),
                            key=lambda e: self.policy.priority(e, now))
        victims = []
        for e in candidates:
            victims.append(e.key)
            free += e.nbytes
            if free >= nbytes:
                return victims
        return None  # the rest is pinned

    def admit(self, key: str, nbytes: int, n_tokens: int, now: int) -> list[str] | None:
        """Make room and insert ``key`` (keeping its access history if it is replaced).

        Returns the evicted keys (the caller drops their bytes), or None if it cannot fit.
        """
        victims = self.make_room(nbytes, now, incoming=key)
        if victims is None:
            return None
        for v in victims:
            self.remove(v)
        old = self.remove(key)
        e = EntryStats(key, nbytes, n_tokens, created=now, last_access=now)
        if old is not None:
            e.created, e.hits, e.freq, e.last_access = old.created, old.hits, old.freq, old.last_access
            e.reuse, e.pinned = old.reuse, old.pinned
        self.add(e)
        return victims

    def add(self, e: EntryStats) -> None:
        self.remove(e.key)
        assert self.nbytes + e.nbytes <= self.budget, "make_room first"
        self.entries[e.key] = e
        self.nbytes += e.nbytes

    def remove(self, key: str) -> EntryStats | None:
        e = self.entries.pop(key, None)
        if e is not None:
            self.nbytes -= e.nbytes
        return e

    def touch(self, key: str, now: int) -> None:
        self.policy.on_access(self.entries[key], now)
