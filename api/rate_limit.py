"""Requests per API key: a token bucket per key, in this process.

Each key may make ``burst`` requests at once and ``rate`` per second on average; a request over that
gets 429 ``rate_limited`` with ``Retry-After`` (seconds until a token is back). The bucket is named
by the key's public id (``egm_<id>_...``), or by a digest of a key of another shape (the admin
key), never by the clear key, so the limiter's memory holds no secrets. It is checked before the
key is verified: a flood of wrong secrets for one key id is throttled too, without a database
lookup per request.

Several server processes each keep their own buckets (see docs/deployment.md): with N processes a
key may get up to N x ``rate``. Usage::

    buckets = TokenBuckets(rate=20, burst=40)
    wait = buckets.take("k1")   # None: go ahead; else seconds to wait
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

from memory.accounts import split_key

_MAX_BUCKETS = 10_000  # past this, buckets that have refilled completely are dropped (they equal new ones)


class TokenBuckets:
    """Thread-safe token buckets by name. ``rate`` tokens per second, at most ``burst`` held."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        assert rate > 0 and burst >= 1, "a limiter needs a positive rate and a burst of at least one"
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


def bucket_name(key: str) -> str:
    """The bucket of a presented key: its public id, or a digest (never the clear key)."""
    parts = split_key(key)
    if parts is not None:
        return f"id:{parts[0]}"
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
