"""``/v1/admin``: tenants and their API keys; every route needs the admin key (ENGRAM_ADMIN_KEY)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from api.deps import AdminDep, ServiceDep
from api.schemas import KeyOut, KeyRequest, NewKeyOut, TenantOut, TenantRequest

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/tenants", status_code=201, response_model=TenantOut, summary="Create a tenant")
def create_tenant(body: TenantRequest, _: AdminDep, service: ServiceDep) -> dict[str, Any]:
    return asdict(service.accounts.create_tenant(body.id))


@router.get("/tenants", response_model=list[TenantOut], summary="List tenants")
def list_tenants(_: AdminDep, service: ServiceDep) -> list[dict[str, Any]]:
    return [asdict(t) for t in service.accounts.list_tenants()]


@router.get("/tenants/{tenant_id}", response_model=TenantOut, summary="One tenant")
def get_tenant(tenant_id: str, _: AdminDep, service: ServiceDep) -> dict[str, Any]:
    return asdict(service.accounts.get_tenant(tenant_id))


@router.post("/tenants/{tenant_id}/disable", response_model=TenantOut, summary="Disable a tenant (keys stop working; data kept)")
def disable_tenant(tenant_id: str, _: AdminDep, service: ServiceDep) -> dict[str, Any]:
    tenant = service.accounts.set_disabled(tenant_id, True)
    service.keys.forget_tenant(tenant_id)
    return asdict(tenant)


@router.post("/tenants/{tenant_id}/enable", response_model=TenantOut, summary="Enable a disabled tenant")
def enable_tenant(tenant_id: str, _: AdminDep, service: ServiceDep) -> dict[str, Any]:
    return asdict(service.accounts.set_disabled(tenant_id, False))


@router.post("/tenants/{tenant_id}/keys", status_code=201, response_model=NewKeyOut,
             summary="Create an API key for a tenant (the clear key is in this response only)")
def create_key(tenant_id: str, body: KeyRequest, _: AdminDep, service: ServiceDep) -> dict[str, Any]:
    key, clear = service.accounts.create_key(tenant_id, body.label)
    return {**asdict(key), "key": clear}


@router.get("/tenants/{tenant_id}/keys", response_model=list[KeyOut], summary="A tenant's keys (never the secrets)")
def list_keys(tenant_id: str, _: AdminDep, service: ServiceDep) -> list[dict[str, Any]]:
    service.accounts.get_tenant(tenant_id)
    return [asdict(k) for k in service.accounts.list_keys(tenant_id)]


@router.delete("/keys/{key_id}", response_model=KeyOut, summary="Revoke a key (idempotent)")
def revoke_key(key_id: str, _: AdminDep, service: ServiceDep) -> dict[str, Any]:
    key = service.accounts.revoke_key(key_id)
    service.keys.forget(key_id)
    return asdict(key)
