"""What the MCP tools run against: an embedded ``Engram`` or a remote Engram service (SDK ``Client``).

Both memories have the same note methods, but they part on the rest: the embedded search ranks
notes and graph facts in one list (``include_facts``) while the SDK's ``search`` returns notes and
``search_with_facts`` adds facts; the graph is ``mem.graph.history`` embedded and ``client.timeline``
remote. So each gets a small adapter with the six operations the tools need, answering plain JSON
dicts: the embedded one shapes domain objects like the REST API does (``api.mcp_results``), the
remote one passes the REST JSON through. Usage: ``build_server(EmbeddedMemory(Engram("engram.db")))``.
"""
from __future__ import annotations

from typing import Any, Protocol

from api.mcp_results import fact_json, hit_json, note_json
from memory.types import Scope

Json = dict[str, Any]
ScopeArgs = dict[str, str | None]


class MemoryBackend(Protocol):
    """The operations of the MCP tools; ``scope`` is ``{user_id, agent_id, session_id}``."""

    def add_note(self, content: str, scope: ScopeArgs, metadata: Json | None, timestamp: str | None,
                 importance: float | None, idempotency_key: str | None = None) -> Json: ...

    def search_notes(self, query: str, scope: ScopeArgs, top_k: int, filters: Json | None) -> list[Json]: ...

    def get_note(self, note_id: str) -> Json: ...

    def delete_note(self, note_id: str) -> None: ...

    def search_facts(self, query: str, scope: ScopeArgs, top_k: int, as_of: str | None) -> list[Json]: ...

    def timeline(self, entity: str, scope: ScopeArgs) -> list[Json]: ...


class EmbeddedMemory:
    """An ``api.engram.Engram`` in this process."""

    def __init__(self, mem: Any) -> None:
        self.mem = mem

    def add_note(self, content: str, scope: ScopeArgs, metadata: Json | None, timestamp: str | None,
                 importance: float | None, idempotency_key: str | None = None) -> Json:
        notes = self.mem.add(content, metadata=metadata, timestamp=timestamp, importance=importance,
                             idempotency_key=idempotency_key, **scope)
        return note_json(notes[0])

    def search_notes(self, query: str, scope: ScopeArgs, top_k: int, filters: Json | None) -> list[Json]:
        # Notes only, so that every id here works with get_note/delete_note; facts have their own tool.
        hits = self.mem.search(query, top_k=top_k, filters=filters, include_facts=False, **scope)
        return [hit_json(h) for h in hits]

    def get_note(self, note_id: str) -> Json:
        return note_json(self.mem.get(note_id))

    def delete_note(self, note_id: str) -> None:
        self.mem.delete(note_id)

    def search_facts(self, query: str, scope: ScopeArgs, top_k: int, as_of: str | None) -> list[Json]:
        found = self.mem.graph.search_facts(query_text=query, scope=Scope(**scope), k=top_k, as_of=as_of)
        return [fact_json(fact, score) for fact, score in found]

    def timeline(self, entity: str, scope: ScopeArgs) -> list[Json]:
        Scope(**scope)  # ScopeRequired, like every other scoped call
        return [fact_json(f) for f in self.mem.graph.history(entity, **scope)]


class RemoteMemory:
    """An Engram service reached through the SDK (``api.client.Client``); errors come back as the
    same typed exceptions (``NotFound``, ``InvalidInput``, ... and the service's ``Unauthorized``)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def add_note(self, content: str, scope: ScopeArgs, metadata: Json | None, timestamp: str | None,
                 importance: float | None, idempotency_key: str | None = None) -> Json:
        return self.client.add(content, metadata=metadata, timestamp=timestamp, importance=importance,
                               idempotency_key=idempotency_key, **scope)[0]

    def search_notes(self, query: str, scope: ScopeArgs, top_k: int, filters: Json | None) -> list[Json]:
        return self.client.search(query, top_k=top_k, filters=filters, explain=True, **scope)

    def get_note(self, note_id: str) -> Json:
        return self.client.get(note_id)

    def delete_note(self, note_id: str) -> None:
        self.client.delete(note_id)

    def search_facts(self, query: str, scope: ScopeArgs, top_k: int, as_of: str | None) -> list[Json]:
        # The service finds facts through its search, which also ranks (and so recalls) notes.
        return self.client.search_with_facts(query, top_k=top_k, as_of=as_of, **scope)["facts"]

    def timeline(self, entity: str, scope: ScopeArgs) -> list[Json]:
        return self.client.timeline(entity, **scope)
