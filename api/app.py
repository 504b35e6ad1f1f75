"""The FastAPI app: ``create_app(settings)`` wires the control store, the tenant registry (one shared
embedder), auth, limits, metrics and the routers. Nothing is read from the environment at import.

Usage::

    app = create_app(Settings(data_dir="/var/lib/engram", admin_key="..."))
    # or, for uvicorn --factory:  uvicorn api.app:create_app_from_env --factory
"""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from api.auth import KeyVerifier
from api.deps import Service
from api.errors import RateLimited, status_of
from api.heap import freeze_startup_objects, thaw_startup_objects
from api.limits import BodyLimit
from api.openai_errors import OPENAI_ROUTE, openai_error
from api.rate_limit import build_limiter
from api.metrics import LatencyMiddleware, Metrics
from api.text_guard import reject_unstorable_text
from api.chat.engines import build_engine
from api.chat.memory_kv import MemoryKV
from api.chat.turn import ChatConfig, ChatPipeline
from api.routes import admin, chat, completions, demo_page, graph, health, jobs, memories, search, transfer
from api.settings import Settings
from api.tenants import TenantRegistry
from memory.accounts import AccountStore, open_accounts_engine
from memory.errors import EngramError, StorageError
from retrieval.embedder import Embedder, MiniLMEmbedder, embed_queries

log = logging.getLogger("engram.api")
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error"}


def create_app(settings: Settings, *, embedder: Embedder | None = None, llm: Any = None) -> FastAPI:
    """The REST app. ``embedder`` and ``llm`` (an inference engine) may be injected (tests share one
    model between apps); otherwise MiniLM and the engine ``settings.llm`` names load at startup, in
    the threadpool, and /readyz answers 503 until they have. The engine answers chat; with
    ``settings.enrich_llm`` it also runs every tenant's LLM enrichment jobs."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    accounts = AccountStore(open_accounts_engine(settings.control_url()))
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    shared = _LazyEmbedder(embedder, settings.embed_batch)
    tenants = TenantRegistry(settings, shared, llm=llm if settings.enrich_llm else None)
    service = Service(settings, accounts, KeyVerifier(accounts, admin_key, settings.key_cache_seconds), tenants,
                      Metrics(tenants.open_tenants))
    service.limiter = build_limiter(settings.rate_limit, settings.burst(), settings.rate_limit_redis_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(shared.load)
        engine = llm if llm is not None else await run_in_threadpool(build_engine, settings)
        service.chat = _pipeline(engine, settings)
        if settings.enrich_llm and tenants.llm is None:
            tenants.llm = engine
        freeze_startup_objects()
        service.ready = True
        try:
            yield
        finally:
            service.ready = False
            thaw_startup_objects()
            await run_in_threadpool(tenants.close)
            accounts.close()
            if llm is None and getattr(engine, "chunk_store", None) is not None:
                engine.chunk_store.close()  # our own store: keep its chunks on disk for the next start

    app = FastAPI(title="Engram", version="1", lifespan=lifespan, description=_DESCRIPTION,
                  responses=_error_responses(), dependencies=[Depends(reject_unstorable_text)])
    app.state.service = service
    for router in (memories.router, search.router, graph.router, jobs.router, transfer.router, admin.router,
                   health.router, chat.router, completions.router, demo_page.router):
        app.include_router(router)
    _install_error_handlers(app, service)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes,
                       on_reject=service.metrics.errors.labels("payload_too_large").inc)
    app.add_middleware(LatencyMiddleware, metrics=service.metrics)
    return app


def _pipeline(engine: Any, settings: Settings) -> ChatPipeline | None:
    if engine is None:
        return None
    kv = MemoryKV(engine) if getattr(engine, "chunk_store", None) is not None else None
    return ChatPipeline(engine, ChatConfig(context_tokens=settings.chat_context_tokens,
                                           window_tokens=settings.chat_window_tokens,
                                           max_tokens_limit=settings.chat_max_tokens), kv)


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory`` (``engram serve``): settings from ``ENGRAM_*`` variables, read now."""
    return create_app(Settings())


class _LazyEmbedder:
    """The one embedder every tenant shares, one call at a time, requests first: the model loads
    at startup (not at construction, so creating the app stays cheap), and a job worker's call
    waits while a request's call is waiting, so enrichment backlogs do not slow down adds and
    searches (the model's fast tokenizer refuses two threads at once anyway: "Already borrowed")."""

    def __init__(self, given: Embedder | None, batch_size: int) -> None:
        self._gate = threading.Condition()
        self._busy = False
        self._requests_waiting = 0
        self._inner = given
        self._batch_size = batch_size
        self.model_id = (given or MiniLMEmbedder).model_id
        self.dim = (given or MiniLMEmbedder).dim

    def load(self) -> None:
        if self._inner is None:
            self._inner = MiniLMEmbedder(batch_size=self._batch_size)
        self._inner.embed(["warm up"])  # the first call pays for lazy init; not a user's request
        embed_queries(self._inner, ["warm up"])

    def embed(self, texts: list[str]) -> Any:
        return self._call(lambda inner: inner.embed(texts))

    def embed_query(self, texts: list[str]) -> Any:
        return self._call(lambda inner: embed_queries(inner, texts))

    def _call(self, run: Callable[[Embedder], Any]) -> Any:
        assert self._inner is not None, "embedder used before startup"
        background = threading.current_thread().name.startswith(_JOB_THREAD_PREFIX)
        with self._gate:
            if not background:
                self._requests_waiting += 1
            while self._busy or (background and self._requests_waiting):
                self._gate.wait()
            self._busy = True
            if not background:
                self._requests_waiting -= 1
        try:
            return run(self._inner)
        finally:
            with self._gate:
                self._busy = False
                self._gate.notify_all()


_JOB_THREAD_PREFIX = "engram-jobs"  # api/worker.py names its threads so


def _error_responses() -> dict[int | str, dict[str, Any]]:
    """The JSON error body on every route, so clients generated from OpenAPI know it."""
    from api.schemas import ErrorBody

    meaning = {400: "invalid input (code names the rule)", 401: "no, unknown or revoked API key",
               403: "admin key on a tenant route or the reverse", 404: "no such thing in this tenant",
               413: "body or batch over the limit", 422: "request does not have the documented shape",
               429: "over the per-key rate limit (ENGRAM_RATE_LIMIT); see Retry-After"}
    return {status: {"model": ErrorBody, "description": text} for status, text in meaning.items()}


def _install_error_handlers(app: FastAPI, service: Service) -> None:
    def body(request: Request, code: str, message: str, status: int, details: Any = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
        service.metrics.errors.labels(code).inc()
        content: dict[str, Any] = {"code": code, "message": message}
        if details is not None:
            content["details"] = details
        if request.url.path.endswith(OPENAI_ROUTE):
            # OpenAI's SDKs (and litellm) read the message from an "error" object; the stable
            # Engram fields stay beside it.
            content["error"] = openai_error(code, message, status)
        return JSONResponse(content, status_code=status, headers=headers)

    @app.exception_handler(EngramError)
    async def engram_error(request: Request, exc: EngramError) -> JSONResponse:
        status = status_of(exc)
        message = str(exc)
        if status >= 500:
            log.error("engine error: %s", exc)
            if isinstance(exc, StorageError):  # the driver's text holds the SQL and its parameters: log only
                message = "the database failed and the request was rolled back; see the server log"
        # Retry-After is whole seconds (RFC 9110); rounding up never invites an early retry.
        wait = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))} if isinstance(exc, RateLimited) else None
        return body(request, exc.code, message, status, headers=wait)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                   for e in exc.errors()]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return body(request, "validation_error", f"{where}: {first['msg']}" if where else first["msg"], 422, details)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return body(request, _HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail), exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        # Starlette re-raises after this response and uvicorn then closes the connection: say so,
        # or a keep-alive client's next request on it fails with a connection reset.
        return body(request, "internal", "internal error; see the server log", 500, headers={"Connection": "close"})


_DESCRIPTION = """Agent memory over HTTP: Zettelkasten notes with a forgetting curve, hybrid search,
export/import, per-tenant isolation.

Every `/v1` route needs an API key: `Authorization: Bearer <key>` (or `X-API-Key: <key>`). A tenant
key sees only its tenant; an id of another tenant answers 404. `/v1/admin` needs the admin key.
Errors are JSON: `{"code": "...", "message": "...", "details"?: [...]}` with a stable `code`.
"""
