"""The tiered chunk store: RAM → local disk → Redis, implementing inference.chunk_kv.ChunkStore.

- ``get`` looks in RAM, then disk, then Redis; a hit in a slower tier is promoted to RAM (a chunk
  from Redis reaches disk when RAM later demotes it, or at once with ``disk_write_through``). A miss is remembered, so the ``put`` that follows (the engine
  computed the chunk) counts its tokens as recomputed.
- ``put`` stores into RAM and writes through to Redis (so other processes see the chunk at once)
  and, when ``disk_write_through`` is set, to disk. A chunk evicted from RAM is demoted to disk
  (when it is not already there) instead of being dropped; ``close()`` demotes what RAM still
  holds, so that the chunks survive a restart.
- Budgets are bytes per tier and are never exceeded; each local tier evicts with its own policy
  instance (LRU, LFU or value-aware). ``pin`` and ``set_reuse`` are the memory layer's hooks: a
  pinned chunk is never evicted from a local tier; ``reuse`` (a note's retention) is the predicted
  reuse probability the value-aware policy adds to the observed frequency. Hints given before
  a chunk arrives are kept and applied when it does.
- Chunks returned by ``get`` are shared with the RAM tier: read them, do not modify them in place.

Usage::

    store = TieredChunkStore(StoreConfig(ram_bytes=64 << 20, disk_dir="kv", disk_bytes=1 << 30,
                                         disk_codec="int8", policy="value"))
    store.put(chunk, reuse=0.8); store.get(chunk.key); store.stats()
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.chunk_kv import ChunkKV
from inference.chunk_store.codec import CODECS
from inference.chunk_store.counters import StoreCounters, TierCounters
from inference.chunk_store.disk_tier import DiskTier
from inference.chunk_store.policies import EntryStats, make_policy
from inference.chunk_store.ram_tier import RamTier
from inference.chunk_store.redis_tier import RedisTier
from inference.errors import InvalidParams

MAX_PENDING_MISSES = 65536
_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")  # also a safe file name


@dataclass(frozen=True)
class StoreConfig:
    """Byte budgets per tier; a tier is off when its location is not given."""

    ram_bytes: int = 256 << 20
    disk_dir: str | Path | None = None
    disk_bytes: int = 4 << 30
    disk_codec: str = "raw"  # "raw", "fp16" or "int8"
    disk_write_through: bool = False
    redis_client: Any = None  # a redis.Redis; the store does not open connections itself
    redis_prefix: str = "engram:kv"
    redis_bytes: int = 1 << 30
    redis_codec: str = "int8"
    policy: str = "value"  # "lru", "lfu" or "value"
    policy_args: dict[str, float] = field(default_factory=dict)

    def validate(self) -> None:
        if min(self.ram_bytes, self.disk_bytes, self.redis_bytes) <= 0:
            raise InvalidParams("tier budgets must be positive byte counts")
        if self.disk_codec not in CODECS or self.redis_codec not in CODECS:
            raise InvalidParams(f"codecs must be one of {CODECS}")
        make_policy(self.policy, **self.policy_args)


@dataclass
class _Hint:
    pinned: bool = False
    reuse: float | None = None


class TieredChunkStore:
    """A ChunkStore over RAM, an optional disk folder and an optional Redis server. Thread-safe."""

    def __init__(self, config: StoreConfig):
        config.validate()
        self.config = config
        policy = lambda: make_policy(config.policy, **config.policy_args)  # noqa: E731
        self.ram = RamTier(config.ram_bytes, policy())
        self.disk = DiskTier(config.disk_dir, config.disk_bytes, policy(), config.disk_codec) \
            if config.disk_dir is not None else None
        self.redis = RedisTier(config.redis_client, config.redis_prefix, config.redis_bytes, config.redis_codec) \
            if config.redis_client is not None else None
        self.counters = StoreCounters()
        self._hints: dict[str, _Hint] = {}
        self._missed: dict[str, bool] = {}  # keys missed and not yet put, oldest first
        self._now = 0
        self._lock = threading.RLock()

    # ---- the ChunkStore protocol -------------------------------------------------------------

    def get(self, key: str) -> ChunkKV | None:
        """The chunk from the fastest tier that holds it, or None (counted as a miss)."""
        _check_key(key)
        with self._lock:
            self._now += 1
            chunk = self.ram.get(key, self._now)
            tier: Any = self.ram
            if chunk is None:
                self.ram.counters.misses += 1
                chunk, tier = self._get_slow(key)
            if chunk is None:
                self.counters.misses += 1
                self._missed[key] = True
                if len(self._missed) > MAX_PENDING_MISSES:  # keys missed and never put: forget the oldest
                    del self._missed[next(iter(self._missed))]
                return None
            tier.counters.hits += 1
            self.counters.tokens_saved += chunk.n_tokens
            return chunk

    def put(self, chunk: ChunkKV, *, reuse: float | None = None) -> None:
        """Store ``chunk`` (RAM, write-through to Redis and optionally disk)."""
        _check_key(chunk.key)
        _check_shape(chunk)
        if reuse is not None:
            self.set_reuse(chunk.key, reuse)
        with self._lock:
            self._now += 1
            if self._missed.pop(chunk.key, False):
                self.counters.tokens_recomputed += chunk.n_tokens
            self._put_ram(chunk)
            if self.disk is not None and self.config.disk_write_through:
                self._put_disk(chunk)
            if self.redis is not None:
                self.redis.put(chunk)

    def pin(self, key: str, pinned: bool = True) -> None:
        """Pinned chunks are never evicted from RAM or disk (Redis is shared, LRU only)."""
        _check_key(key)
        with self._lock:
            self._hints.setdefault(key, _Hint()).pinned = pinned
            self._apply_hint(key)

    def set_reuse(self, key: str, reuse: float) -> None:
        """The caller's predicted reuse probability in [0, 1] (e.g. the note's retention)."""
        _check_key(key)
        if not 0.0 <= reuse <= 1.0:
            raise InvalidParams(f"reuse must be a probability in [0, 1], got {reuse}")
        with self._lock:
            self._hints.setdefault(key, _Hint()).reuse = reuse
            self._apply_hint(key)

    def discard(self, key: str) -> None:
        """Remove the chunk from every tier and forget its hints."""
        _check_key(key)
        with self._lock:
            for tier in self._tiers():
                tier.remove(key)
            self._hints.pop(key, None)
            self._missed.pop(key, None)

    # ---- beyond the protocol -----------------------------------------------------------------

    def record_recompute(self, n_tokens: int) -> None:
        """The engine reports tokens it recomputed although their chunk was found (selective recompute)."""
        with self._lock:
            self.counters.tokens_recomputed += n_tokens

    def stats(self) -> dict:
        """Counters per tier and overall (hits, misses, bytes, evictions, tokens saved, recompute fraction)."""
        with self._lock:
            for tier in self._tiers():
                c = tier.counters
                c.nbytes = tier.nbytes if isinstance(tier, RedisTier) else tier.index.nbytes
                c.n_chunks = tier.n_chunks() if isinstance(tier, RedisTier) else len(tier.index)
            self.counters.tiers = {t.name: t.counters for t in self._tiers()}
            return self.counters.as_dict()

    def close(self) -> None:
        """Demote what RAM holds to disk, so that a new store on the same folder finds it, and
        release the folder."""
        with self._lock:
            if self.disk is None:
                return
            for chunk in self.ram.chunks():
                if chunk.key not in self.disk:
                    self._put_disk(chunk)
            self.disk.close()

    def __enter__(self) -> TieredChunkStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals ---------------------------------------------------------------------------

    def _tiers(self) -> list[Any]:
        return [t for t in (self.ram, self.disk, self.redis) if t is not None]

    def _get_slow(self, key: str) -> tuple[ChunkKV | None, Any]:
        if self.disk is not None:
            chunk = self.disk.get(key, self._now)
            if chunk is not None:
                self._put_ram(chunk)
                return chunk, self.disk
            self.disk.counters.misses += 1
        if self.redis is not None:
            chunk = self.redis.get(key)
            if chunk is not None:
                self._put_ram(chunk)
                if self.disk is not None and self.config.disk_write_through:
                    self._put_disk(chunk)
                return chunk, self.redis
            self.redis.counters.misses += 1
        return None, None

    def _put_ram(self, chunk: ChunkKV) -> None:
        evicted = self.ram.put(chunk, self._now)
        self._apply_hint(chunk.key)
        if evicted is None and self.disk is not None and chunk.key not in self.disk:
            self._put_disk(chunk)  # too big for RAM, or RAM is all pinned: go one tier down
        for old in evicted or []:
            if self.disk is not None and old.key not in self.disk:
                self._put_disk(old)  # demote rather than drop

    def _put_disk(self, chunk: ChunkKV) -> None:
        assert self.disk is not None
        self.disk.put(chunk, self._now)
        self._apply_hint(chunk.key)

    def _apply_hint(self, key: str) -> None:
        hint = self._hints.get(key)
        if hint is None:
            return
        for tier in (self.ram, self.disk):
            e: EntryStats | None = tier.entry(key) if tier is not None else None
            if e is not None:
                e.pinned, e.reuse = hint.pinned, hint.reuse


def _check_shape(chunk: ChunkKV) -> None:
    k, v = chunk.k, chunk.v
    if k.shape != v.shape or k.dim() != 4 or k.shape[2] != chunk.n_tokens:
        raise InvalidParams(f"chunk k/v must both be [layers, kv_heads, {chunk.n_tokens}, head_dim], "
                            f"got {tuple(k.shape)} and {tuple(v.shape)}")


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidParams(f"chunk key must be 1-128 characters of [A-Za-z0-9_.-], got {key!r}")


__all__ = ["StoreConfig", "TieredChunkStore", "TierCounters"]
