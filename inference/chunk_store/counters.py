"""Counters of the chunk store, exposed for metrics: ``store.stats()`` returns a plain dict."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class TierCounters:
    hits: int = 0
    misses: int = 0  # lookups that reached this tier and did not find the chunk
    puts: int = 0  # chunks written into this tier (puts, promotions, demotions)
    evictions: int = 0
    rejected: int = 0  # chunks that could not fit (too large, or room held by pinned chunks)
    corrupt: int = 0  # copies that failed their checksum, discarded and never loaded
    nbytes: int = 0  # bytes held now (filled in when reported)
    n_chunks: int = 0


@dataclass
class StoreCounters:
    tiers: dict[str, TierCounters] = field(default_factory=dict)
    misses: int = 0  # lookups that no tier could answer
    tokens_saved: int = 0  # tokens of chunks served from a tier (prefill the engine skipped)
    tokens_recomputed: int = 0  # tokens of chunks put after a miss (or reported by the engine)

    def as_dict(self) -> dict:
        d = asdict(self)
        lookups = sum(t.hits for t in self.tiers.values()) + self.misses
        d["hit_rate"] = (lookups - self.misses) / lookups if lookups else 0.0
        done = self.tokens_saved + self.tokens_recomputed
        d["recompute_fraction"] = self.tokens_recomputed / done if done else 0.0
        return d
