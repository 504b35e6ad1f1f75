"""Redis tier: encoded chunks on a Redis server shared by several engine processes.

Keys under one prefix: ``{prefix}:c:{key}`` holds a chunk's checksummed bytes, the sorted set
``{prefix}:lru`` its last-use stamp, ``{prefix}:bytes`` the total size, ``{prefix}:clock`` a shared
counter that stamps uses. Put and eviction run as one Lua script, so concurrent processes never
push the shared total past the budget. Eviction here is LRU across all processes (the
value-aware statistics are per process); pins and reuse hints act on the local tiers.

Usage: ``RedisTier(redis.Redis(), prefix="engram:kv:smollm2", budget=256 << 20, codec="int8")``.
"""
from __future__ import annotations

from typing import Any

from inference.chunk_kv import ChunkKV
from inference.chunk_store.codec import CorruptChunk, decode, encode
from inference.chunk_store.counters import TierCounters

# KEYS: data key, lru zset, bytes counter, clock. ARGV: blob, member, budget, data-key prefix.
_PUT = """
local old = redis.call('STRLEN', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
local total = redis.call('INCRBY', KEYS[3], string.len(ARGV[1]) - old)
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[2])
local budget = tonumber(ARGV[3])
local evicted = 0
while total > budget do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #oldest == 0 or oldest[1] == ARGV[2] then break end
  local dk = ARGV[4] .. oldest[1]
  total = redis.call('INCRBY', KEYS[3], -redis.call('STRLEN', dk))
  redis.call('DEL', dk)
  redis.call('ZREM', KEYS[2], oldest[1])
  evicted = evicted + 1
end
return evicted
"""
# KEYS: data key, lru zset, clock. ARGV: member. Returns the bytes and stamps the use.
_GET = """
local v = redis.call('GET', KEYS[1])
if v then redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1]) end
return v
"""
# KEYS: data key, lru zset, bytes counter. ARGV: member.
_DEL = """
local n = redis.call('STRLEN', KEYS[1])
if n > 0 then
  redis.call('DEL', KEYS[1])
  redis.call('INCRBY', KEYS[3], -n)
end
redis.call('ZREM', KEYS[2], ARGV[1])
return n
"""


class RedisTier:
    name = "redis"

    def __init__(self, client: Any, prefix: str, budget: int, codec: str = "int8"):
        self.client, self.prefix, self.budget, self.codec = client, prefix, budget, codec
        self.counters = TierCounters()
        self._put, self._get, self._del = (client.register_script(s) for s in (_PUT, _GET, _DEL))
        self._lru, self._bytes, self._clock = f"{prefix}:lru", f"{prefix}:bytes", f"{prefix}:clock"

    def _data(self, key: str) -> str:
        return f"{self.prefix}:c:{key}"

    def get(self, key: str, now: int = 0) -> ChunkKV | None:
        blob = self._get(keys=[self._data(key), self._lru, self._clock], args=[key])
        if blob is None:
            return None
        try:
            return decode(blob, expected_key=key)
        except CorruptChunk:
            self.counters.corrupt += 1
            self.remove(key)
            return None

    def put(self, chunk: ChunkKV, now: int = 0) -> int | None:
        """Write ``chunk``; returns how many chunks were evicted, or None if it is over the budget."""
        blob = encode(chunk, self.codec)
        if len(blob) > self.budget:
            self.counters.rejected += 1
            return None
        evicted = int(self._put(keys=[self._data(chunk.key), self._lru, self._bytes, self._clock],
                                args=[blob, chunk.key, self.budget, f"{self.prefix}:c:"]))
        self.counters.puts += 1
        self.counters.evictions += evicted
        return evicted

    def __contains__(self, key: str) -> bool:
        return bool(self.client.exists(self._data(key)))

    def remove(self, key: str) -> None:
        self._del(keys=[self._data(key), self._lru, self._bytes], args=[key])

    @property
    def nbytes(self) -> int:
        return int(self.client.get(self._bytes) or 0)

    def n_chunks(self) -> int:
        return int(self.client.zcard(self._lru))

    def clear(self) -> None:
        """Delete every key under the prefix (tests, and an operator's reset)."""
        names = list(self.client.scan_iter(match=f"{self.prefix}:*", count=500))
        for i in range(0, len(names), 500):
            self.client.delete(*names[i : i + 500])
