"""``/v1/search`` (notes and graph facts), ``/v1/consolidate``, ``/v1/restore``."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ServiceDep, TenantDep
from api.graph_search import FactHit
from api.schemas import ConsolidateRequest, IdsResponse, RestoreRequest, SearchRequest, SearchResponse
from api.serialize import hit_json
from retrieval.ranking import Hit

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResponse, summary="Hybrid search in a scope")
def search(body: SearchRequest, tenant: TenantDep, service: ServiceDep) -> dict[str, Any]:
    service.check_top_k(body.top_k)
    found = tenant.mem.search(body.query, filters=body.filters, top_k=body.top_k, now=body.now, as_of=body.as_of,
                              include_archived=body.include_archived, include_facts=body.include_facts,
                              **body.scope())
    # Engram ranks notes and facts in one list; the response keeps that order within each kind.
    return {"results": [hit_json(h, body.explain) for h in found if isinstance(h, Hit)],
            "facts": [h.as_dict() for h in found if isinstance(h, FactHit)]}


@router.post("/consolidate", response_model=IdsResponse, tags=["forgetting"],
             summary="Archive notes whose retention fell below the threshold")
def consolidate(body: ConsolidateRequest, tenant: TenantDep) -> dict[str, Any]:
    scope = {k: v for k, v in body.scope().items() if v is not None}
    return {"ids": tenant.mem.consolidate(now=body.now, threshold=body.threshold, **scope)}


@router.post("/restore", response_model=IdsResponse, tags=["forgetting"], summary="Bring archived notes back")
def restore(body: RestoreRequest, tenant: TenantDep, service: ServiceDep) -> dict[str, Any]:
    service.check_batch(len(body.ids))
    return {"ids": tenant.mem.restore(body.ids)}
