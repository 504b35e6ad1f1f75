"""The MCP tools of Engram: their arguments (pydantic models, which also give the JSON schemas that
clients see) and what each does against a memory backend (``api.mcp_backends``: an embedded
``Engram`` or a remote service through the SDK). Tools are plain synchronous functions
``(backend, args) -> dict``; ``api.mcp_server`` runs them off the event loop and turns errors into
MCP tool errors. Usage: ``TOOLS["search_memory"].run(backend, {"query": "lisbon", "user_id": "ann"})``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from api.mcp_backends import MemoryBackend
from memory.errors import InvalidInput


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
    idempotency_key: str | None = Field(
        None, description="retry-safe adds: a second call with the same key and content returns the first "
                          "call's note instead of storing it again; the key with other content is an error")


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
    return backend.add_note(args.content, args.scope(), args.metadata, args.timestamp, args.importance,
                            args.idempotency_key)


def search_memory(backend: MemoryBackend, args: SearchMemoryArgs) -> dict[str, Any]:
    return {"results": backend.search_notes(args.query, args.scope(), args.top_k, args.filters)}


def get_memory(backend: MemoryBackend, args: NoteIdArgs) -> dict[str, Any]:
    return backend.get_note(args.id)


def delete_memory(backend: MemoryBackend, args: NoteIdArgs) -> dict[str, Any]:
    backend.delete_note(args.id)
    return {"deleted": args.id}


def search_facts(backend: MemoryBackend, args: SearchFactsArgs) -> dict[str, Any]:
    return {"facts": backend.search_facts(args.query, args.scope(), args.top_k, args.as_of)}


def entity_timeline(backend: MemoryBackend, args: EntityTimelineArgs) -> dict[str, Any]:
    return {"entity": args.entity, "facts": backend.timeline(args.entity, args.scope())}


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
