"""``/v1/export`` and ``/v1/import``: a scope as JSON lines (``application/x-ndjson``)."""
from __future__ import annotations

import itertools
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ServiceDep, TenantDep
from api.engram import Engram
from api.errors import ValidationFailed
from api.schemas import ImportResponse
from api.transfer import export_lines, parse_lines
from memory.types import Scope

router = APIRouter(prefix="/v1", tags=["export"])
NDJSON = "application/x-ndjson"


@router.get("/export", summary="Every note of a scope (archived too) as JSON lines",
            responses={200: {"content": {NDJSON: {"example": '{"id": "...", "content": "...", "links": []}\n'}}}})
def export_scope(tenant: TenantDep, user_id: str | None = None, agent_id: str | None = None,
                 session_id: str | None = None) -> StreamingResponse:
    scope = Scope(user_id, agent_id, session_id)
    # A sync generator: Starlette pulls it in the threadpool, page by page. The first page is read
    # here, before the response starts, so a failing query still gets its error status and body.
    lines = export_lines(tenant.mem, scope)
    first = next(lines, None)
    return StreamingResponse(itertools.chain([] if first is None else [first], lines), media_type=NDJSON)


@router.post("/import", status_code=201, response_model=ImportResponse, summary="Load an export (JSON lines)",
             openapi_extra={"requestBody": {"required": True, "content": {NDJSON: {"schema": {"type": "string"}}}}})
async def import_scope(request: Request, tenant: TenantDep, service: ServiceDep) -> dict[str, Any]:
    body = await request.body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed("the body must be UTF-8 JSON lines") from exc
    lines = [line for line in text.splitlines() if line.strip()]
    service.check_batch(len(lines))
    return {"imported": await run_in_threadpool(_load, tenant.mem, lines, service.settings.max_batch)}


def _load(mem: Engram, lines: list[str], max_notes: int) -> int:
    notes, links = parse_lines(lines, mem.config.memory, max_notes, lambda ids: set(mem.store.get_many(ids)))
    return len(mem.import_notes(notes, links))
