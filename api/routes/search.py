"""``/v1/search`` (notes, and facts once the graph is wired), ``/v1/consolidate``, ``/v1/restore``."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ServiceDep, TenantDep
from api.schemas import ConsolidateRequest, IdsResponse, RestoreRequest, SearchRequest, SearchResponse
from api.serialize import hit_json

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResponse, summary="Hybrid search in a scope")
def search(body: SearchRequest, tenant: TenantDep, service: ServiceDep) -> dict[str, Any]:
    service.check_top_k(body.top_k)
    hits = tenant.mem.search(body.query, filters=body.filters, top_k=body.top_k, now=body.now,
                             include_archived=body.include_archived, **body.scope())
    return {"results": [hit_json(h, body.explain) for h in hits], "facts": []}


@router.post("/consolidate", response_model=IdsResponse, tags=["forgetting"],
             summary="Archive notes whose retention fell below the threshold")
def consolidate(body: ConsolidateRequest, tenant: TenantDep) -> dict[str, Any]:
    scope = {k: v for k, v in body.scope().items() if v is not None}
    return {"ids": tenant.mem.consolidate(now=body.now, threshold=body.threshold, **scope)}


@router.post("/restore", response_model=IdsResponse, tags=["forgetting"], summary="Bring archived notes back")
def restore(body: RestoreRequest, tenant: TenantDep, service: ServiceDep) -> dict[str, Any]:
    service.check_batch(len(body.ids))
    return {"ids": tenant.mem.restore(body.ids)}
