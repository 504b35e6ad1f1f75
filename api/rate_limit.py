"""Requests per API key: a token bucket per key, in this process.

Each key may make ``burst`` requests at once and ``rate`` per second on average; a request over that
gets 429 ``rate_limited`` with ``Retry-After`` (seconds until a token is back). The bucket is named
by the key's public id (``egm_<id>_...``), or by a digest of a key of another shape (the admin
key), never by the clear key, so the limiter's memory holds no secrets. It is checked before the
key is verified: a flood of wrong secrets for one key id is throttled too, without a database
lookup per request.

``TokenBuckets`` keeps the buckets in this process: with N server processes a key may get up to
N x ``rate``. ``RedisTokenBuckets`` keeps them in Redis (one atomic script per request, Redis's
clock), so every process shares one limit per key (see docs/deployment.md). Usage::

    buckets = TokenBuckets(rate=20, burst=40)   # or RedisTokenBuckets(redis.Redis(...), 20, 40)
    wait = buckets.take("k1")   # None: go ahead; else seconds to wait
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from memory.accounts import split_key
from memory.errors import InvalidInput

log = logging.getLogger("engram.api")
_MAX_BUCKETS = 10_000  # past this, buckets that have refilled completely are dropped (they equal new ones)


def _check(rate: float, burst: int) -> None:
    """A limiter's settings are checked always, not by ``assert`` (gone under ``python -O``)."""
    if not rate > 0 or burst < 1:
        raise InvalidInput(f"a rate limit needs a positive rate and a burst of at least 1 (got {rate}, {burst})")


class TokenBuckets:
    """Thread-safe token buckets by name. ``rate`` tokens per second, at most ``burst`` held."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        _check(rate, burst)
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, name: str) -> float | None:
        """Spend one token of ``name``'s bucket: None when there was one, else the seconds until there is."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(name, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                if len(self._buckets) > _MAX_BUCKETS:
                    self._drop_full(now)
                return None
            self._buckets[name] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _drop_full(self, now: float) -> None:
        full = [n for n, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst]
        for name in full:
            del self._buckets[name]


# KEYS[1]: the bucket; ARGV: rate, burst. Returns "" (go ahead) or the seconds to wait. Redis's own
# clock (TIME), so processes on machines with skewed clocks still share one bucket correctly.
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1]) or burst
local at = tonumber(held[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = ''
if tokens >= 1 then tokens = tokens - 1 else wait = tostring((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""


class RedisTokenBuckets:
    """The same buckets in Redis, shared by every process that uses the same Redis. When Redis
    cannot be reached the request is let through (and logged): the limit protects the service,
    it must not become a way for Redis to take it down."""

    def __init__(self, client: Any, rate: float, burst: int, prefix: str = "engram:rate:") -> None:
        _check(rate, burst)
        self.rate = rate
        self.burst = float(burst)
        self._client = client
        self._prefix = prefix
        self._take = client.register_script(_TAKE)

    def take(self, name: str) -> float | None:
        import redis

        try:
            wait = self._take(keys=[self._prefix + name], args=[self.rate, self.burst])
        except redis.RedisError as exc:
            log.warning("rate limit: Redis unavailable (%s); request let through", exc.__class__.__name__)
            return None
        text = wait.decode() if isinstance(wait, bytes) else str(wait or "")
        return float(text) if text else None


def build_limiter(rate: float, burst: int, redis_url: str | None) -> TokenBuckets | RedisTokenBuckets | None:
    """The limiter the settings ask for: none (rate 0), per process, or shared through Redis."""
    if rate <= 0:
        return None
    if not redis_url:
        return TokenBuckets(rate, burst)
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return RedisTokenBuckets(client, rate, burst)


def bucket_name(key: str) -> str:
    """The bucket of a presented key: its public id, or a digest (never the clear key)."""
    parts = split_key(key)
    if parts is not None:
        return f"id:{parts[0]}"
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
