"""``/v1/chat/completions``: OpenAI's chat completion API with Engram's memory behind it.

Any OpenAI client (or litellm, as ``openai/<anything>`` with ``api_base=<engram>/v1``) gets a model
with memory: the scope is the ``user`` field (or the ``X-Engram-User`` header), the last user
message is the question and is searched for, earlier user/assistant messages are the
conversation, a client's system message is added to Engram's. ``response_format`` with a JSON
schema (or ``json_object``) is decoded under the schema's grammar. The reply adds an ``engram``
object: the memories used and the cache statistics.
"""
from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Header
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.chat.schemas import CompletionBody
from api.chat.sse import Emit, error_body, sse, thread_stream
from api.chat.turn import ChatPipeline, ChatRequest, ChatResult, PreparedTurn
from api.deps import ServiceDep, TenantContext, TenantDep
from api.errors import status_of
from api.openai_errors import openai_error
from api.routes.chat import pipeline_of
from memory.errors import EngramError, InvalidInput, ScopeRequired

router = APIRouter(prefix="/v1", tags=["chat"])
_FINISH = {"stop": "stop", "length": "length", "cancelled": "stop", None: "stop"}


@router.post("/chat/completions", summary="OpenAI-compatible chat completion with memory")
async def completions(body: CompletionBody, tenant: TenantDep, service: ServiceDep, background: BackgroundTasks,
                      x_engram_user: str | None = Header(None),
                      x_engram_remember: str | None = Header(None)) -> Any:
    pipeline = pipeline_of(service)
    request = to_request(body, body.user or x_engram_user, (x_engram_remember or "true").lower() != "false")
    meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
    if not body.stream:
        result = await run_in_threadpool(pipeline.run, tenant.id, tenant.mem, request)
        background.add_task(pipeline.warm, tenant.id, result)
        return _completion(meta, result)
    turn = await run_in_threadpool(pipeline.prepare, tenant.id, tenant.mem, request)
    return StreamingResponse(thread_stream(_producer(pipeline, tenant, turn, meta),
                                           lambda e: sse(None, {"error": _stream_error(e)})),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _stream_error(exc: BaseException) -> dict[str, Any]:
    """An error after the stream began (status 200 already sent), as OpenAI streams one."""
    found = error_body(exc)
    status = status_of(exc) if isinstance(exc, EngramError) else 500
    return openai_error(found["code"], found["message"], status)


def to_request(body: CompletionBody, user: str | None, remember: bool) -> ChatRequest:
    """OpenAI messages → a chat turn: the last message is the question, the rest the conversation."""
    if not user:
        raise ScopeRequired("give the memory scope in the 'user' field or the X-Engram-User header")
    last = body.messages[-1]
    if last.role != "user" or not last.text().strip():
        raise InvalidInput("the last message must be a non-empty user message")
    history = [{"role": m.role, "content": m.text()} for m in body.messages[:-1] if m.role in ("user", "assistant")]
    system = "\n".join(m.text() for m in body.messages if m.role in ("system", "developer")) or None
    from api.chat.prompt import SYSTEM

    return ChatRequest(last.text(), user_id=user, history=history,
                       max_tokens=body.max_completion_tokens or body.max_tokens,
                       temperature=body.temperature or 0.0, remember=remember,
                       system=f"{SYSTEM}\n{system}" if system else None, json_schema=_schema(body.response_format))


def _schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    kind = (response_format or {}).get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")  # type: ignore[union-attr]
        if not isinstance(schema, dict):
            raise InvalidInput("response_format.json_schema.schema must be a JSON schema object")
        return schema
    raise InvalidInput(f"response_format type {kind!r} is not one of text, json_object, json_schema")


def _completion(meta: dict[str, Any], r: ChatResult) -> dict[str, Any]:
    prompt = int(r.stats.get("prompt_tokens") or 0)
    return {**meta, "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": r.reply},
                         "finish_reason": _FINISH.get(r.finish_reason, "stop")}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": r.completion_tokens,
                      "total_tokens": prompt + r.completion_tokens},
            "engram": {"memories": r.memories, "stats": r.stats, "written": r.written}}


def _chunk(meta: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> str:
    return sse(None, {**meta, "object": "chat.completion.chunk",
                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def _producer(pipeline: ChatPipeline, tenant: TenantContext, turn: PreparedTurn, meta: dict[str, Any]) -> Any:
    def produce(emit: Emit, cancel: threading.Event) -> None:
        emit(_chunk(meta, {"role": "assistant", "content": ""}))
        for piece in pipeline.generate(turn, tenant.id, cancel):
            emit(_chunk(meta, {"content": piece}))
        result = pipeline.finish(tenant.id, tenant.mem, turn)
        emit(_chunk(meta, {}, _FINISH.get(result.finish_reason, "stop")))
        emit(sse(None, "[DONE]"))
        pipeline.warm(tenant.id, result)
    return produce
