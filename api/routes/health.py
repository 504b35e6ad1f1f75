"""``/healthz`` (the process answers), ``/readyz`` (embedder loaded, control store reachable), ``/metrics``."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api.deps import ServiceDep
from api.metrics import CONTENT_TYPE
from memory.errors import EngramError

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: embedder loaded and control store reachable",
            responses={503: {"description": "not ready yet"}})
def readyz(service: ServiceDep) -> JSONResponse:
    checks: dict[str, Any] = {"embedder": service.ready}
    try:
        service.accounts.ping()
        checks["control_store"] = True
    except EngramError:
        checks["control_store"] = False
    ok = all(checks.values())
    return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}}})
def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)
