"""The MCP tools of Engram: their arguments (pydantic models, which also give the JSON schemas that
clients see) and what each does against a memory backend.

A backend is anything with the embedded ``Engram``'s method names (``add``, ``search``, ``get``,
``delete``) and, for the graph tools, a ``graph`` attribute with ``search_facts`` and ``history``:
the embedded ``Engram`` and the SDK ``Client`` both qualify. Tools are plain synchronous functions
``(backend, args) -> dict``; ``api.mcp_server`` runs them off the event loop and turns errors into
MCP tool errors. Usage: ``TOOLS["search_memory"].run(mem, {"query": "lisbon", "user_id": "ann"})``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from api.mcp_results import fact_json, hit_json, note_json
from memory.errors import EngramError, InvalidInput
from memory.types import Scope


class MemoryBackend(Protocol):
    """What the MCP server needs of a memory (``Engram`` or the SDK ``Client``)."""

    def add(self, data: Any, *, user_id: str | None = None, agent_id: str | None = None,
            session_id: str | None = None, metadata: dict[str, Any] | None = None,
            timestamp: Any = None, importance: float | None = None) -> list[Any]: ...

    def search(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
               session_id: str | None = None, filters: dict[str, Any] | None = None,
               top_k: int = 10) -> list[Any]: ...

    def get(self, note_id: str) -> Any: ...

    def delete(self, note_id: str) -> None: ...


class GraphUnavailable(EngramError):
    """The backend has no knowledge graph (so fact tools cannot answer)."""

    code = "graph_unavailable"


# ---- arguments ---------------------------------------------------------------------------------

_SCOPE_HELP = "whose memory: at least one of user_id, agent_id, session_id"


class _Args(BaseModel):
    # Unknown keys are refused so a misspelt "user" does not silently search everyone's notes.
    model_config = ConfigDict(extra="forbid")


class _Scoped(_Args):
    user_id: str | None = Field(None, description=_SCOPE_HELP)
    agent_id: str | None = Field(None, description=_SCOPE_HELP)
    session_id: str | None = Field(None, description=_SCOPE_HELP)

    def scope(self) -> dict[str, str | None]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "session_id": self.session_id}


class AddMemoryArgs(_Scoped):
    content: str = Field(description="the text to remember")
    metadata: dict[str, Any] | None = Field(None, description="JSON object stored with the note; filterable")
    timestamp: str | None = Field(None, description="ISO-8601 time the thing happened (default: now)")
    importance: float | None = Field(None, description="0..1; important notes fade more slowly")


class SearchMemoryArgs(_Scoped):
    query: str = Field(description="what to look for, in natural language")
    top_k: StrictInt = Field(10, description="how many hits to return")
    filters: dict[str, Any] | None = Field(
        None, description='metadata filter with mem0 operators, e.g. {"topic": {"eq": "travel"}}')


class NoteIdArgs(_Args):
    id: str = Field(description="the note id (from add_memory or search_memory)")


class SearchFactsArgs(_Scoped):
    query: str = Field(description="what to look for among the knowledge-graph facts")
    top_k: StrictInt = Field(10, description="how many facts to return")
    as_of: str | None = Field(None, description="ISO-8601 time: facts true then (default: current facts)")


class EntityTimelineArgs(_Scoped):
    entity: str = Field(description='an entity name, alias or id, e.g. "Emma" or "I" for the user')


# ---- tools -------------------------------------------------------------------------------------


def add_memory(backend: MemoryBackend, args: AddMemoryArgs) -> dict[str, Any]:
    notes = backend.add(args.content, metadata=args.metadata, timestamp=args.timestamp,
                        importance=args.importance, **args.scope())
    return note_json(notes[0])


def search_memory(backend: MemoryBackend, args: SearchMemoryArgs) -> dict[str, Any]:
    hits = backend.search(args.query, top_k=args.top_k, filters=args.filters, **args.scope())
    return {"results": [hit_json(h) for h in hits]}


def get_memory(backend: MemoryBackend, args: NoteIdArgs) -> dict[str, Any]:
    return note_json(backend.get(args.id))


def delete_memory(backend: MemoryBackend, args: NoteIdArgs) -> dict[str, Any]:
    backend.delete(args.id)
    return {"deleted": args.id}


def search_facts(backend: MemoryBackend, args: SearchFactsArgs) -> dict[str, Any]:
    scope = Scope(**args.scope())  # ScopeRequired before anything runs
    found = _graph(backend).search_facts(query_text=args.query, scope=scope, k=args.top_k, as_of=args.as_of)
    return {"facts": [fact_json(fact, score) for fact, score in found]}


def entity_timeline(backend: MemoryBackend, args: EntityTimelineArgs) -> dict[str, Any]:
    Scope(**args.scope())
    facts = _graph(backend).history(args.entity, **args.scope())
    return {"entity": args.entity, "facts": [fact_json(f) for f in facts]}


def _graph(backend: MemoryBackend) -> Any:
    graph = getattr(backend, "graph", None)
    if graph is None:
        raise GraphUnavailable("this memory has no knowledge graph; fact tools are unavailable")
    return graph


# ---- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolSpec:
    """One MCP tool: its name, what it tells the model, its arguments and its body."""

    name: str
    description: str
    args: type[_Args]
    body: Callable[[MemoryBackend, Any], dict[str, Any]]
    read_only: bool

    def input_schema(self) -> dict[str, Any]:
        return self.args.model_json_schema()

    def run(self, backend: MemoryBackend, arguments: dict[str, Any]) -> dict[str, Any]:
        """Validate ``arguments`` (InvalidInput when they do not fit) and run the tool."""
        try:
            parsed = self.args.model_validate(arguments)
        except ValidationError as exc:
            raise InvalidInput(_explain(exc)) from None
        return self.body(backend, parsed)


def _explain(exc: ValidationError) -> str:
    """One line per bad field, without echoing the (possibly large) rejected values."""
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()]
    return "; ".join(parts)


TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in (
    ToolSpec("add_memory", "Remember a piece of text for a user, agent or session. Returns the stored note "
             "(id, content, keywords, links to related notes).", AddMemoryArgs, add_memory, False),
    ToolSpec("search_memory", "Find remembered notes relevant to a query within a scope. Each result has a "
             "score, its retention (how well remembered, 0..1), event_time and links.",
             SearchMemoryArgs, search_memory, False),
    ToolSpec("get_memory", "Read one note by id, with its links and forgetting-curve state.",
             NoteIdArgs, get_memory, False),
    ToolSpec("delete_memory", "Delete one note by id (its history keeps the old content).",
             NoteIdArgs, delete_memory, False),
    ToolSpec("search_facts", "Search the knowledge graph's facts (subject, predicate, object with the time "
             "they held) extracted from remembered notes.", SearchFactsArgs, search_facts, True),
    ToolSpec("entity_timeline", "Every fact ever stated about an entity, closed ones included, in the order "
             "they held in the world: how something changed over time.",
             EntityTimelineArgs, entity_timeline, True),
)}
