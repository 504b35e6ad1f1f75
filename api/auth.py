"""Who is calling: the API key from ``Authorization: Bearer <key>`` or ``X-API-Key`` → a tenant id.

Verified keys are cached for ``key_cache_seconds`` so a request costs no control-database round
trip; a revocation through this process takes effect at once, through another process within
that time.
"""
from __future__ import annotations

import hmac
import threading
import time

from starlette.requests import Request

from api.errors import Forbidden, Unauthorized
from memory.accounts import AccountStore, split_key


def key_from_request(request: Request) -> str:
    """The key the caller sent, or Unauthorized."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = request.headers.get("x-api-key", "").strip()
    if key:
        return key
    raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")


class KeyVerifier:
    """Tenant keys against the control store (with a short cache) and the admin key from settings."""

    def __init__(self, accounts: AccountStore, admin_key: str | None, cache_seconds: float) -> None:
        self._accounts = accounts
        self._admin_key = admin_key
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def is_admin(self, key: str) -> bool:
        return self._admin_key is not None and hmac.compare_digest(key.encode(), self._admin_key.encode())

    def cached_tenant(self, key: str) -> str | None:
        """The tenant of a key verified less than ``key_cache_seconds`` ago, without any I/O."""
        cached = self._cache.get(key)
        return cached[0] if cached is not None and cached[1] > time.monotonic() else None

    def tenant_of(self, key: str) -> str:
        """The tenant id of a valid tenant key; Forbidden for the admin key, Unauthorized otherwise."""
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        tenant_id = self._accounts.verify(key)
        if tenant_id is None:
            if self.is_admin(key):
                raise Forbidden("the admin key manages tenants; use a tenant's key for its memories")
            raise Unauthorized("unknown or revoked API key")
        if self._ttl > 0:
            with self._lock:
                self._cache[key] = (tenant_id, now + self._ttl)
        return tenant_id

    def require_admin(self, key: str) -> None:
        """Pass for the admin key; Forbidden for a valid tenant key, Unauthorized for anything else."""
        if self.is_admin(key):
            return
        if self._accounts.verify(key) is None:
            raise Unauthorized("unknown or revoked API key")
        if self._admin_key is None:
            raise Forbidden("no admin key is configured (set ENGRAM_ADMIN_KEY)")
        raise Forbidden("this route needs the admin key")

    def forget(self, key_id: str) -> None:
        """Drop cached entries of a revoked key (by its public id)."""
        with self._lock:
            for key in [k for k in self._cache if (split_key(k) or ("", ""))[0] == key_id]:
                del self._cache[key]

    def forget_tenant(self, tenant_id: str) -> None:
        with self._lock:
            for key in [k for k, (t, _) in self._cache.items() if t == tenant_id]:
                del self._cache[key]
