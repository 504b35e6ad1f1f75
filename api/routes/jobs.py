"""``/v1/jobs``: the tenant's enrichment jobs (graph extraction), and retrying a failed one."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query

from api.deps import ServiceDep, TenantDep
from api.schemas import JobOut
from api.serialize import job_json

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("", response_model=list[JobOut], summary="Jobs, newest first; a failed one shows its last error")
def list_jobs(tenant: TenantDep, service: ServiceDep, state: Literal["queued", "running", "done", "failed"] | None = None,
              limit: int = Query(50, ge=1)) -> list[dict[str, Any]]:
    service.check_top_k(limit, "limit")
    return [job_json(j) for j in tenant.mem.jobs(state=state, limit=limit)]


@router.post("/{job_id}/retry", response_model=JobOut, responses={404: {"description": "no such job in this tenant"}},
             summary="Queue a failed job again with fresh attempts")
def retry_job(job_id: int, tenant: TenantDep) -> dict[str, Any]:
    return job_json(tenant.mem.retry_job(job_id))
