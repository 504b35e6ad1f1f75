"""``/v1/graph``: the tenant's bi-temporal knowledge graph — entities, an entity's timeline, facts
(current, or valid ``as_of``), neighbours and paths. Every query names a scope, like notes do."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.deps import TenantDep
from api.schemas import EntityOut, FactOut, NeighbourOut
from api.serialize import entity_json, fact_json
from memory.errors import NotFound

router = APIRouter(prefix="/v1/graph", tags=["graph"])
NOT_FOUND = {404: {"description": "no such entity in this scope"}}


def _scope(user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None) -> dict[str, Any]:
    return {"user_id": user_id, "agent_id": agent_id, "session_id": session_id}


ScopeQuery = Annotated[dict[str, Any], Depends(_scope)]
AsOf = Annotated[str | None, Query(description="the world as it was at this time (ISO-8601)")]


@router.get("/entities", response_model=list[EntityOut], summary="Entities of a scope")
def entities(tenant: TenantDep, scope: ScopeQuery, type: str | None = None) -> list[dict[str, Any]]:
    return [entity_json(e) for e in tenant.mem.graph.entities(type=type, **scope)]


@router.get("/entities/{entity}", response_model=EntityOut, responses=NOT_FOUND,
            summary="One entity by id, name, alias or acronym")
def entity(entity: str, tenant: TenantDep, scope: ScopeQuery) -> dict[str, Any]:
    found = tenant.mem.graph.find_entity(entity, **scope)
    if found is None:
        raise NotFound(f"no entity {entity!r}")
    return entity_json(found)


@router.get("/entities/{entity}/timeline", response_model=list[FactOut], responses=NOT_FOUND,
            summary="Every fact ever stated on an entity, closed ones too, in world-time order")
def timeline(entity: str, tenant: TenantDep, scope: ScopeQuery) -> list[dict[str, Any]]:
    return [fact_json(f) for f in tenant.mem.graph.history(entity, **scope)]


@router.get("/entities/{entity}/neighbours", response_model=list[NeighbourOut], responses=NOT_FOUND,
            summary="Entities within depth hops over facts holding now (or as_of), nearest first")
def neighbours(entity: str, tenant: TenantDep, scope: ScopeQuery, as_of: AsOf = None,
               depth: int = Query(1, ge=1, le=3)) -> list[dict[str, Any]]:
    found = tenant.mem.graph.neighbours(entity, depth, as_of=as_of, **scope)
    return [{"entity": entity_json(e), "distance": d} for e, d in found]


@router.get("/facts", response_model=list[FactOut], summary="Facts of a scope: current ones, or those valid as_of")
def facts(tenant: TenantDep, scope: ScopeQuery, as_of: AsOf = None,
          entity: str | None = Query(None, description="only facts on this entity"),
          predicate: str | None = None, include_expired: bool = False) -> list[dict[str, Any]]:
    found = tenant.mem.graph.facts(entity, as_of=as_of, predicate=predicate, include_expired=include_expired, **scope)
    return [fact_json(f) for f in found]


@router.get("/path", response_model=list[FactOut], responses=NOT_FOUND,
            summary="The facts along a shortest path between two entities (empty when unconnected)")
def path(a: str, b: str, tenant: TenantDep, scope: ScopeQuery, as_of: AsOf = None) -> list[dict[str, Any]]:
    return [fact_json(f) for f in tenant.mem.graph.path(a, b, as_of=as_of, **scope)]
