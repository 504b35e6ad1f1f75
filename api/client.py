"""The Python SDK: ``Client`` and ``AsyncClient`` over httpx, mirroring the embedded ``Engram``.

Usage::

    from api.client import Client
    with Client("http://127.0.0.1:8000", api_key="egm_...") as mem:
        mem.add("I moved to Lisbon in May", user_id="ann")
        for hit in mem.search("where does ann live?", user_id="ann", top_k=5):
            print(hit["score"], hit["content"])

Results are the JSON objects of the REST API (dicts); errors are the exception classes the embedded
API raises (``memory.errors.NotFound``, ``InvalidInput``, ...) plus the service's own
(``api.errors.Unauthorized``, ``PayloadTooLarge``, ``ConnectionFailed``), chosen by the JSON ``code``.
Both clients share one request builder (``_Api``); only ``_send`` differs. Pass ``http=`` to run
against any ``httpx.Client`` (tests use Starlette's TestClient, i.e. the real app in-process).
Importing this module does not import torch, faiss or sqlalchemy.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from api.errors import ConnectionFailed, error_for

__all__ = ["AsyncClient", "Client", "import_chunks"]
JSON = Any


def _json(response: httpx.Response) -> JSON:
    return response.json()


def _field(name: str) -> Callable[[httpx.Response], JSON]:
    return lambda response: response.json()[name]


def _nothing(_: httpx.Response) -> None:
    return None


@dataclass(frozen=True)
class _Call:
    """One HTTP request and how to read its answer."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: JSON = None
    content: bytes | None = None
    parse: Callable[[httpx.Response], Any] = _json
    headers: dict[str, str] | None = None


def _clean(value: Any) -> Any:
    """Drop None fields and turn datetimes into ISO strings, recursively."""
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _scope(user_id: str | None, agent_id: str | None, session_id: str | None) -> dict[str, Any]:
    return {"user_id": user_id, "agent_id": agent_id, "session_id": session_id}


def _raise_for(response: httpx.Response) -> None:
    """The one place an HTTP error becomes an Engram exception."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "", response.text[:500] or response.reason_phrase
    raise error_for(code, response.status_code, message)


class _Api:
    """Every method builds a ``_Call`` and hands it to ``_send``: the sync client returns the result,
    the async client a coroutine of it."""

    def _send(self, call: _Call) -> Any:
        raise NotImplementedError

    # ---- memories ----------------------------------------------------------------------------

    def add(self, data: str | Sequence[Mapping[str, Any]], *, user_id: str | None = None, agent_id: str | None = None,
            session_id: str | None = None, metadata: dict[str, Any] | None = None,
            timestamp: datetime | str | float | None = None, importance: float | None = None,
            idempotency_key: str | None = None) -> Any:
        """Store a note (a string) or one note per chat turn; returns the stored notes. Send the
        same ``idempotency_key`` when retrying an add whose answer was lost: the server returns
        the first try's notes instead of storing them again."""
        key = "content" if isinstance(data, str) else "messages"
        body = {key: data if isinstance(data, str) else list(data), **_scope(user_id, agent_id, session_id),
                "metadata": metadata, "timestamp": timestamp, "importance": importance}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        return self._send(_Call("POST", "/v1/memories", json=_clean(body), parse=_field("results"), headers=headers))

    def search(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
               session_id: str | None = None, filters: dict[str, Any] | None = None, top_k: int = 10,
               now: datetime | str | None = None, as_of: datetime | str | None = None,
               include_archived: bool = False, explain: bool = True) -> Any:
        """Hybrid search; returns hits (dicts with id, content, score and, with ``explain``, the parts)."""
        body = {"query": query, **_scope(user_id, agent_id, session_id), "filters": filters, "top_k": top_k,
                "now": now, "as_of": as_of, "include_archived": include_archived, "explain": explain}
        return self._send(_Call("POST", "/v1/search", json=_clean(body), parse=_field("results")))

    def get(self, note_id: str, *, now: datetime | str | None = None) -> Any:
        return self._send(_Call("GET", f"/v1/memories/{_id(note_id)}", params=_clean({"now": now})))

    def get_all(self, *, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None,
                include_archived: bool = False, limit: int = 50, offset: int = 0,
                filters: dict[str, Any] | None = None) -> Any:
        """One page of a scope's notes, oldest event first."""
        params = {**_scope(user_id, agent_id, session_id), "include_archived": str(include_archived).lower(),
                  "limit": limit, "offset": offset, "filters": json.dumps(filters) if filters is not None else None}
        return self._send(_Call("GET", "/v1/memories", params=_clean(params), parse=_field("results")))

    def update(self, note_id: str, *, content: str | None = None, metadata: dict[str, Any] | None = None,
               importance: float | None = None, timestamp: datetime | str | None = None) -> Any:
        body = {"content": content, "metadata": metadata, "importance": importance, "timestamp": timestamp}
        return self._send(_Call("PATCH", f"/v1/memories/{_id(note_id)}", json=_clean(body)))

    def delete(self, note_id: str) -> Any:
        return self._send(_Call("DELETE", f"/v1/memories/{_id(note_id)}", parse=_nothing))

    def history(self, note_id: str) -> Any:
        return self._send(_Call("GET", f"/v1/memories/{_id(note_id)}/history"))

    def links(self, note_id: str) -> Any:
        return self._send(_Call("GET", f"/v1/memories/{_id(note_id)}/links"))

    def consolidate(self, *, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None,
                    now: datetime | str | None = None, threshold: float | None = None) -> Any:
        """Archive faded notes; returns their ids."""
        body = {**_scope(user_id, agent_id, session_id), "now": now, "threshold": threshold}
        return self._send(_Call("POST", "/v1/consolidate", json=_clean(body), parse=_field("ids")))

    def restore(self, note_ids: str | Sequence[str]) -> Any:
        ids = [note_ids] if isinstance(note_ids, str) else list(note_ids)
        return self._send(_Call("POST", "/v1/restore", json={"ids": ids}, parse=_field("ids")))

    def export(self, *, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None) -> Any:
        """A scope as JSON lines (str)."""
        params = _clean(_scope(user_id, agent_id, session_id))
        return self._send(_Call("GET", "/v1/export", params=params, parse=lambda r: r.text))

    def import_lines(self, lines: str | bytes) -> Any:
        """Load an export in one request (all or nothing); returns how many notes were imported.
        An export larger than the server's batch or body limit is split with ``import_chunks``."""
        data = lines.encode() if isinstance(lines, str) else lines
        return self._send(_Call("POST", "/v1/import", content=data, parse=_field("imported")))

    def search_with_facts(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
                          session_id: str | None = None, top_k: int = 10, as_of: datetime | str | None = None,
                          now: datetime | str | None = None, filters: dict[str, Any] | None = None) -> Any:
        """Notes and graph facts: ``{"results": [hit], "facts": [fact hit]}`` (facts valid ``as_of``)."""
        body = {"query": query, **_scope(user_id, agent_id, session_id), "top_k": top_k, "as_of": as_of,
                "now": now, "filters": filters, "include_facts": True, "explain": True}
        return self._send(_Call("POST", "/v1/search", json=_clean(body)))

    def chat(self, message: str, *, user_id: str | None = None, agent_id: str | None = None,
             session_id: str | None = None, history: Sequence[Mapping[str, str]] | None = None,
             max_tokens: int = 128, temperature: float = 0.0, top_k: int | None = None,
             remember: bool = True) -> Any:
        """One memory-augmented chat turn (``POST /v1/chat``): ``{"reply", "memories", "written",
        "stats", ...}``. ``history``: earlier turns ``[{role, content}]``; ``remember`` writes the
        exchange back as notes."""
        body = {"message": message, **_scope(user_id, agent_id, session_id), "history": list(history or []),
                "max_tokens": max_tokens, "temperature": temperature, "top_k": top_k, "remember": remember}
        return self._send(_Call("POST", "/v1/chat", json=_clean(body)))

    # ---- knowledge graph (mirrors ``Engram.graph``) -------------------------------------------

    def entities(self, *, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None,
                 type: str | None = None) -> Any:
        params = _clean({**_scope(user_id, agent_id, session_id), "type": type})
        return self._send(_Call("GET", "/v1/graph/entities", params=params))

    def facts(self, entity: str | None = None, *, user_id: str | None = None, agent_id: str | None = None,
              session_id: str | None = None, as_of: datetime | str | None = None, predicate: str | None = None,
              include_expired: bool = False) -> Any:
        """Current facts of a scope (on ``entity`` when given), or those valid ``as_of``."""
        params = _clean({**_scope(user_id, agent_id, session_id), "entity": entity, "as_of": as_of,
                         "predicate": predicate, "include_expired": str(include_expired).lower()})
        return self._send(_Call("GET", "/v1/graph/facts", params=params))

    def timeline(self, entity: str, *, user_id: str | None = None, agent_id: str | None = None,
                 session_id: str | None = None) -> Any:
        """Every fact ever stated on an entity (``Engram.graph.history``)."""
        params = _clean(_scope(user_id, agent_id, session_id))
        return self._send(_Call("GET", f"/v1/graph/entities/{_id(entity)}/timeline", params=params))

    def neighbours(self, entity: str, depth: int = 1, *, user_id: str | None = None, agent_id: str | None = None,
                   session_id: str | None = None, as_of: datetime | str | None = None) -> Any:
        params = _clean({**_scope(user_id, agent_id, session_id), "depth": depth, "as_of": as_of})
        return self._send(_Call("GET", f"/v1/graph/entities/{_id(entity)}/neighbours", params=params))

    def path(self, a: str, b: str, *, user_id: str | None = None, agent_id: str | None = None,
             session_id: str | None = None, as_of: datetime | str | None = None) -> Any:
        params = _clean({**_scope(user_id, agent_id, session_id), "a": a, "b": b, "as_of": as_of})
        return self._send(_Call("GET", "/v1/graph/path", params=params))

    # ---- jobs ------------------------------------------------------------------------------------

    def jobs(self, state: str | None = None, limit: int = 50) -> Any:
        return self._send(_Call("GET", "/v1/jobs", params=_clean({"state": state, "limit": limit})))

    def retry_job(self, job_id: int) -> Any:
        return self._send(_Call("POST", f"/v1/jobs/{int(job_id)}/retry"))

    # ---- service -----------------------------------------------------------------------------

    def health(self) -> Any:
        return self._send(_Call("GET", "/healthz"))

    def ready(self) -> Any:
        return self._send(_Call("GET", "/readyz"))

    # ---- admin (needs the admin key) ---------------------------------------------------------

    def create_tenant(self, tenant_id: str) -> Any:
        return self._send(_Call("POST", "/v1/admin/tenants", json={"id": tenant_id}))

    def list_tenants(self) -> Any:
        return self._send(_Call("GET", "/v1/admin/tenants"))

    def create_key(self, tenant_id: str, label: str = "") -> Any:
        """A new key; the clear key is in ``["key"]`` and is never shown again."""
        return self._send(_Call("POST", f"/v1/admin/tenants/{_id(tenant_id)}/keys", json={"label": label}))

    def revoke_key(self, key_id: str) -> Any:
        return self._send(_Call("DELETE", f"/v1/admin/keys/{_id(key_id)}"))


def _id(value: str) -> str:
    """A path segment; quoting keeps an id with '/' from reaching another route."""
    return quote(str(value), safe="")


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class Client(_Api):
    """Synchronous client. Usage: ``Client("http://127.0.0.1:8000", api_key="egm_...")``."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 timeout: float = 30.0, http: httpx.Client | None = None) -> None:
        self._owns = http is None
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout)
        self._headers = _headers(api_key)

    def _send(self, call: _Call) -> Any:
        try:
            response = self._http.request(call.method, call.path, params=call.params, json=call.json,
                                          content=call.content, headers={**self._headers, **(call.headers or {})})
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{call.method} {call.path}: {exc.__class__.__name__}: {exc}") from exc
        _raise_for(response)
        return call.parse(response)

    def close(self) -> None:
        if self._owns:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class AsyncClient(_Api):
    """Asynchronous client; every method returns a coroutine. Usage: ``await AsyncClient(url, api_key=k).search(...)``."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 timeout: float = 30.0, http: httpx.AsyncClient | None = None) -> None:
        self._owns = http is None
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._headers = _headers(api_key)

    async def _send(self, call: _Call) -> Any:
        try:
            response = await self._http.request(call.method, call.path, params=call.params, json=call.json,
                                                content=call.content, headers={**self._headers, **(call.headers or {})})
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{call.method} {call.path}: {exc.__class__.__name__}: {exc}") from exc
        _raise_for(response)
        return call.parse(response)

    async def aclose(self) -> None:
        if self._owns:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


def import_chunks(text: str, max_notes: int = 500) -> list[str]:
    """An export split into bodies of at most ``max_notes`` lines, for servers whose batch or body
    limit is smaller than the export; each chunk is imported atomically, not the whole. Import the
    chunks in order: notes link to earlier notes, whose chunk is then already there.
    Usage: ``for body in import_chunks(text): client.import_lines(body)``."""
    lines = [line for line in text.splitlines() if line.strip()]
    return ["\n".join(lines[i:i + max_notes]) + "\n" for i in range(0, len(lines), max_notes)]
