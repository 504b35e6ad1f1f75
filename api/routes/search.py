"""``/v1/search`` (notes, and facts once the graph is wired), ``/v1/consolidate``, ``/v1/restore``."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ServiceDep, TenantDep
from api.engram import Engram
from api.graph_search import GraphSearchConfig, rank_graph
from api.schemas import ConsolidateRequest, IdsResponse, RestoreRequest, SearchRequest, SearchResponse
from api.serialize import hit_json
from memory.timeutil import to_utc
from memory.types import Scope

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResponse, summary="Hybrid search in a scope")
def search(body: SearchRequest, tenant: TenantDep, service: ServiceDep) -> dict[str, Any]:
    service.check_top_k(body.top_k)
    hits = tenant.mem.search(body.query, filters=body.filters, top_k=body.top_k, now=body.now,
                             include_archived=body.include_archived, **body.scope())
    facts = _facts(tenant.mem, body) if body.include_facts else []
    return {"results": [hit_json(h, body.explain) for h in hits], "facts": facts}


def _facts(mem: Engram, body: SearchRequest) -> list[dict[str, Any]]:
    """Graph facts for the query: current ones, or those valid ``as_of`` (see api/graph_search.py)."""
    cfg = GraphSearchConfig()
    as_of = to_utc(body.as_of) if body.as_of is not None else None
    ranking = rank_graph(mem.graph, body.query, None, Scope(**body.scope()), as_of, cfg.max_facts, cfg)
    return [f.as_dict() for f in ranking.facts]


@router.post("/consolidate", response_model=IdsResponse, tags=["forgetting"],
             summary="Archive notes whose retention fell below the threshold")
def consolidate(body: ConsolidateRequest, tenant: TenantDep) -> dict[str, Any]:
    scope = {k: v for k, v in body.scope().items() if v is not None}
    return {"ids": tenant.mem.consolidate(now=body.now, threshold=body.threshold, **scope)}


@router.post("/restore", response_model=IdsResponse, tags=["forgetting"], summary="Bring archived notes back")
def restore(body: RestoreRequest, tenant: TenantDep, service: ServiceDep) -> dict[str, Any]:
    service.check_batch(len(body.ids))
    return {"ids": tenant.mem.restore(body.ids)}
