"""``/v1/chat``: a memory-augmented chat turn, as one JSON reply or as server-sent events.

Events of a stream: ``memories`` (the memories in the prompt), ``token`` (``{"text"}``, many),
then ``done`` (the same body as the JSON reply) or ``error`` (``{"code", "message"}``).
"""
from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, BackgroundTasks
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.chat.schemas import ChatBody
from api.chat.sse import Emit, error_body, sse, thread_stream
from api.chat.turn import ChatPipeline, PreparedTurn
from api.deps import ServiceDep, TenantContext, TenantDep
from api.errors import LLMUnavailable

router = APIRouter(prefix="/v1", tags=["chat"])


def pipeline_of(service: Any) -> ChatPipeline:
    if service.chat is None:
        raise LLMUnavailable("no language model is configured (ENGRAM_LLM=none)")
    return service.chat


@router.post("/chat", summary="Chat with memory: retrieve, generate with chunk-cached KV, write back")
async def chat(body: ChatBody, tenant: TenantDep, service: ServiceDep, background: BackgroundTasks) -> Any:
    if body.top_k is not None:
        service.check_top_k(body.top_k)  # bad input is a 4xx whether or not a model is configured
    pipeline = pipeline_of(service)
    request = body.to_request()
    if not body.stream:
        result = await run_in_threadpool(pipeline.run, tenant.id, tenant.mem, request)
        background.add_task(pipeline.warm, tenant.id, result)  # after the response is sent
        return result.as_dict()
    # Retrieval runs before the response starts, so bad input still gets a 4xx status.
    turn = await run_in_threadpool(pipeline.prepare, tenant.id, tenant.mem, request)
    return StreamingResponse(thread_stream(_producer(pipeline, tenant, turn), lambda e: sse("error", error_body(e))),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _producer(pipeline: ChatPipeline, tenant: TenantContext, turn: PreparedTurn) -> Any:
    def produce(emit: Emit, cancel: threading.Event) -> None:
        emit(sse("memories", {"memories": [c.as_dict() for c in turn.chunks]}))
        for piece in pipeline.generate(turn, tenant.id, cancel):
            emit(sse("token", {"text": piece}))
        result = pipeline.finish(tenant.id, tenant.mem, turn)
        emit(sse("done", result.as_dict()))
        pipeline.warm(tenant.id, result)  # the client has its reply; the new notes' KV is ready next turn
    return produce
