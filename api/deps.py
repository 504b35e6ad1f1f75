"""FastAPI dependencies as named ``Annotated`` aliases: the service, the caller's tenant, the admin."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.auth import KeyVerifier, key_from_request
from api.engram import Engram
from api.errors import NotReady, PayloadTooLarge, RateLimited, ValidationFailed
from api.metrics import Metrics
from api.rate_limit import RedisTokenBuckets, TokenBuckets, bucket_name
from api.settings import Settings
from api.tenants import TenantRegistry
from memory.accounts import AccountStore


@dataclass
class Service:
    """Everything a route may need, built once by ``create_app`` and kept on ``app.state.service``."""

    settings: Settings
    accounts: AccountStore
    keys: KeyVerifier
    tenants: TenantRegistry
    metrics: Metrics
    ready: bool = False
    chat: Any = None  # api.chat.ChatPipeline once the engine is loaded; None: no LLM configured
    limiter: TokenBuckets | RedisTokenBuckets | None = None  # per-key rate limit; None: ENGRAM_RATE_LIMIT=0

    def check_rate(self, key: str) -> None:
        """RateLimited when ``key`` is over its rate; counts the request otherwise."""
        if self.limiter is None:
            return
        wait = self.limiter.take(bucket_name(key))
        if wait is not None:
            raise RateLimited(f"over {self.limiter.rate:g} requests/s for this key; retry in {wait:.2f} s", wait)

    def check_top_k(self, value: int, name: str = "top_k") -> int:
        if not 1 <= value <= self.settings.max_top_k:
            raise ValidationFailed(f"{name} must be in [1, {self.settings.max_top_k}]")
        return value

    def check_batch(self, size: int) -> None:
        if size > self.settings.max_batch:
            raise PayloadTooLarge(f"{size} notes in one request; the limit is {self.settings.max_batch}")


async def _service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(_service)]


@dataclass(frozen=True)
class TenantContext:
    id: str
    mem: Engram


# Declared for OpenAPI (so the docs and generated clients know both headers); the key itself is
# read by ``key_from_request``, which gives our own 401 body instead of FastAPI's.
_Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]
_XApiKey = Annotated[str | None, Depends(APIKeyHeader(name="X-API-Key", auto_error=False))]


# Dependencies are async with a fast path: FastAPI runs a ``def`` dependency in the threadpool,
# and every thread hop is a wake-up that costs milliseconds on a loaded machine. Only a cache miss
# (a key lookup, opening a tenant) goes to the threadpool.
async def _tenant(request: Request, service: ServiceDep, _b: _Bearer, _k: _XApiKey) -> TenantContext:
    key = key_from_request(request)
    service.check_rate(key)
    tenant_id = service.keys.cached_tenant(key)
    if tenant_id is None:
        tenant_id = await run_in_threadpool(service.keys.tenant_of, key)
    if not service.ready:
        raise NotReady("the service is starting; retry shortly")
    mem = service.tenants.opened(tenant_id)
    if mem is None:
        mem = await run_in_threadpool(service.tenants.get, tenant_id)
    return TenantContext(tenant_id, mem)


async def _admin(request: Request, service: ServiceDep, _b: _Bearer, _k: _XApiKey) -> None:
    key = key_from_request(request)
    service.check_rate(key)
    await run_in_threadpool(service.keys.require_admin, key)


TenantDep = Annotated[TenantContext, Depends(_tenant)]
AdminDep = Annotated[None, Depends(_admin)]
