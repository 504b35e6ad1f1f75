"""``/v1/memories``: add, list, get, update, delete, history, links."""
from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Header, Query, Response

from api.deps import ServiceDep, TenantDep
from api.engram import Engram
from api.errors import ValidationFailed
from api.schemas import AddRequest, AddResponse, HistoryOut, LinkOut, NoteList, NoteOut, UpdateRequest
from api.serialize import history_json, link_json, note_json
from memory.filters import compile_filter
from memory.types import Note, Scope

router = APIRouter(prefix="/v1/memories", tags=["memories"])
NOT_FOUND = {404: {"description": "no such note in this tenant"}}
MAX_OFFSET = 2**31 - 1  # past what the databases' OFFSET takes (SQLite: an OverflowError, a 500)


@router.post("", status_code=201, response_model=AddResponse, summary="Add a note or a batch of chat messages")
def add_memory(body: AddRequest, tenant: TenantDep, service: ServiceDep,
               idempotency_key: str | None = Header(None, description="retry-safe adds: the same key and body "
                                                    "return the first try's notes; the key with another body is 409")
               ) -> dict[str, Any]:
    if (body.content is None) == (body.messages is None):
        raise ValidationFailed("give exactly one of content or messages")
    data: Any = body.content
    if body.messages is not None:
        service.check_batch(len(body.messages))
        data = [m.model_dump(exclude_none=True) for m in body.messages]
    notes = tenant.mem.add(data, metadata=body.metadata, timestamp=body.timestamp, importance=body.importance,
                           idempotency_key=idempotency_key, **body.scope())
    return {"results": [note_json(n) for n in notes]}


@router.get("", response_model=NoteList, summary="List a scope's notes, oldest event first")
def list_memories(
    tenant: TenantDep, service: ServiceDep,
    user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None,
    include_archived: bool = False,
    filters: str | None = Query(None, description='JSON filter, e.g. {"role": {"eq": "user"}}'),
    limit: int = Query(50, ge=1), offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> dict[str, Any]:
    service.check_top_k(limit, "limit")
    scope = Scope(user_id, agent_id, session_id)
    if filters is None:
        # One row past the page tells whether there is a next page without counting the scope.
        page = tenant.mem.store.list_notes(scope, include_archived, limit + 1, offset)
    else:
        page = _filtered_page(tenant.mem, scope, include_archived, _parse_filters(filters), limit + 1, offset)
    more = len(page) > limit
    return {"results": [note_json(n) for n in page[:limit]], "limit": limit, "offset": offset,
            "next_offset": offset + limit if more else None}


def _parse_filters(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"filters is not JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise ValidationFailed("filters must be a JSON object")
    return value


def _filtered_page(mem: Engram, scope: Scope, include_archived: bool, filters: dict[str, Any], limit: int,
                   offset: int) -> list[Note]:
    """The ``offset``..``offset+limit`` slice of the scope's notes that match ``filters``, in list order."""
    matching = mem.store.matching_ids(scope, include_archived, compile_filter(filters))
    out: list[Note] = []
    skipped, start = 0, 0
    while len(out) < limit:
        page = mem.store.list_notes(scope, include_archived, 500, start)
        for note in page:
            if note.id not in matching:
                continue
            if skipped < offset:
                skipped += 1
            elif len(out) < limit:
                out.append(note)
        if len(page) < 500:
            break
        start += 500
    return out


@router.get("/{note_id}", response_model=NoteOut, responses=NOT_FOUND, summary="One note with its links")
def get_memory(note_id: str, tenant: TenantDep, now: str | None = None) -> dict[str, Any]:
    return note_json(tenant.mem.get(note_id, now=now))


@router.patch("/{note_id}", response_model=NoteOut, responses=NOT_FOUND, summary="Change content, metadata, importance or time")
def update_memory(note_id: str, body: UpdateRequest, tenant: TenantDep) -> dict[str, Any]:
    note = tenant.mem.update(note_id, content=body.content, metadata=body.metadata, importance=body.importance,
                             timestamp=body.timestamp)
    return note_json(note)


@router.delete("/{note_id}", status_code=204, responses=NOT_FOUND, summary="Delete a note (its history stays)")
def delete_memory(note_id: str, tenant: TenantDep) -> Response:
    tenant.mem.delete(note_id)
    return Response(status_code=204)


@router.get("/{note_id}/history", response_model=list[HistoryOut], responses=NOT_FOUND, summary="Audit trail")
def memory_history(note_id: str, tenant: TenantDep) -> list[dict[str, Any]]:
    return [history_json(e) for e in tenant.mem.history(note_id)]


@router.get("/{note_id}/links", response_model=list[LinkOut], responses=NOT_FOUND, summary="Links from and to a note")
def memory_links(note_id: str, tenant: TenantDep) -> list[dict[str, Any]]:
    return [link_json(lk) for lk in tenant.mem.links(note_id)]
