"""Eviction policies: one small interface, three policies. Pure Python, no torch.

A policy ranks entries; the entry with the lowest ``priority`` is evicted first (pinned entries
never are — the budget index skips them). Time is a logical clock: the store ticks once per
get/put, so ranks do not depend on wall-clock speed and tests are deterministic.

- LRU: priority = last access tick.
- LFU: priority = (access count, last access): least used first, oldest first among equals.
- Value-aware: expected tokens saved per byte, where the expected reuse is a frequency decayed by
  age plus the caller's predicted reuse probability (the memory layer passes a note's retention)::

      value = n_tokens * (freq * 0.5 ** (age / half_life) + prior * reuse) / nbytes

  ``freq`` itself is a decayed count (each access adds 1 after decaying the old value), so a
  chunk that was hot long ago fades, unlike plain LFU.

Usage: ``policy = make_policy("value")``; ``policy.priority(entry, now)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from inference.errors import InvalidParams


@dataclass
class EntryStats:
    """What a tier knows about one stored chunk."""

    key: str
    nbytes: int
    n_tokens: int
    created: int  # tick of insertion
    last_access: int
    hits: int = 0  # accesses after insertion
    freq: float = 1.0  # decayed access count, as of ``last_access``
    reuse: float | None = None  # the caller's predicted reuse probability in [0, 1]
    pinned: bool = False


class EvictionPolicy(Protocol):
    name: str

    def on_access(self, e: EntryStats, now: int) -> None:
        """Update ``e`` for an access (hit) at tick ``now``."""

    def priority(self, e: EntryStats, now: int) -> float | tuple[float, ...]:
        """Lower is evicted first."""


class LRU:
    name = "lru"

    def on_access(self, e: EntryStats, now: int) -> None:
        e.hits += 1
        e.last_access = now

    def priority(self, e: EntryStats, now: int) -> float:
        return e.last_access


class LFU:
    name = "lfu"

    def on_access(self, e: EntryStats, now: int) -> None:
        e.hits += 1
        e.last_access = now

    def priority(self, e: EntryStats, now: int) -> tuple[float, ...]:
        return (e.hits, e.last_access)


class ValueAware:
    """Tokens saved × expected reuse, decayed by age, per byte (see the module docstring)."""

    name = "value"

    def __init__(self, half_life: float = 2000.0, prior: float = 2.0):
        if half_life <= 0 or prior < 0:
            raise InvalidParams("half_life must be > 0 and prior >= 0")
        self.half_life, self.prior = half_life, prior

    def _decayed(self, e: EntryStats, now: int) -> float:
        return e.freq * 0.5 ** ((now - e.last_access) / self.half_life)

    def on_access(self, e: EntryStats, now: int) -> None:
        e.freq = self._decayed(e, now) + 1.0
        e.hits += 1
        e.last_access = now

    def priority(self, e: EntryStats, now: int) -> tuple[float, ...]:
        expected = self._decayed(e, now) + self.prior * (e.reuse or 0.0)
        return (e.n_tokens * expected / max(e.nbytes, 1), e.last_access)


POLICIES = ("lru", "lfu", "value")


def make_policy(name: str, **kwargs: float) -> EvictionPolicy:
    """``"lru"``, ``"lfu"`` or ``"value"`` (which takes ``half_life`` and ``prior``)."""
    if name == "lru":
        return LRU()
    if name == "lfu":
        return LFU()
    if name == "value":
        return ValueAware(**kwargs)
    raise InvalidParams(f"eviction policy must be one of {POLICIES}, got {name!r}")
