"""Request and response bodies of the REST API (pydantic), with the examples OpenAPI shows."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Timestamp = datetime | str | float | int


class ErrorBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"code": "not_found", "message": "no note '3f1c...'"},
        {"code": "validation_error", "message": "body.top_k: Input should be less than or equal to 100",
         "details": [{"loc": ["body", "top_k"], "msg": "Input should be less than or equal to 100",
                      "type": "less_than_equal"}]}]})
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no note '3f1c...'"])
    details: list[dict[str, Any]] | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"role": "user", "content": "I moved to Lisbon in May.", "timestamp": "2026-05-03T10:00:00Z"}]})
    role: Literal["user", "assistant", "system", "tool"] = "user"
    content: str
    timestamp: Timestamp | None = None


class ScopeFields(BaseModel):
    user_id: str | None = Field(None, examples=["ann"])
    agent_id: str | None = None
    session_id: str | None = None

    def scope(self) -> dict[str, str | None]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "session_id": self.session_id}


class AddRequest(ScopeFields):
    """One note (``content``) or one note per chat turn (``messages``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"content": "I moved to Lisbon in May", "user_id": "ann", "timestamp": "2026-05-03T10:00:00Z"},
        {"messages": [{"role": "user", "content": "My cat Luna hates the rain."},
                      {"role": "assistant", "content": "Poor Luna!"}], "user_id": "ann", "session_id": "s1"},
    ]})
    content: str | None = None
    messages: list[Message] | None = None
    metadata: dict[str, Any] | None = None
    timestamp: Timestamp | None = None
    importance: float | None = Field(None, ge=0.0, le=1.0)


class UpdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"content": "I moved to Porto in June", "metadata": {"source": "correction"}}]})
    content: str | None = None
    metadata: dict[str, Any] | None = None
    importance: float | None = Field(None, ge=0.0, le=1.0)
    timestamp: Timestamp | None = None


class SearchRequest(ScopeFields):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"query": "where does ann live?", "user_id": "ann", "top_k": 5},
        {"query": "pets", "user_id": "ann", "filters": {"role": {"eq": "user"}},
         "now": "2026-12-01T00:00:00Z", "explain": True},
    ]})
    query: str = Field(min_length=1)
    top_k: int = Field(10, ge=1)
    filters: dict[str, Any] | None = None
    now: Timestamp | None = Field(None, description="rank (and reinforce) as of this time")
    as_of: Timestamp | None = Field(None, description="facts valid at this time (knowledge graph)")
    include_archived: bool = False
    include_facts: bool = Field(True, description="also return matching graph facts, when the graph exists")
    explain: bool = Field(False, description="add dense, bm25, relevance, retention, recency and speaker_factor to each hit")


class ConsolidateRequest(ScopeFields):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"user_id": "ann", "now": "2027-01-01"}]})
    now: Timestamp | None = None
    threshold: float | None = Field(None, ge=0.0, le=1.0)


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"ids": ["3f1c2a9e-..."]}]})
    ids: list[str] = Field(min_length=1)


_LINK = {"source": "3f1c2a9e-5b7d-4e21-9a0c-1d2e3f4a5b6c", "target": "9b8a7c6d-1e2f-4a3b-8c7d-6e5f4a3b2c1d",
         "kind": "related", "weight": 0.71, "created_at": "2026-05-03T10:00:00Z"}
_NOTE = {"id": "3f1c2a9e-5b7d-4e21-9a0c-1d2e3f4a5b6c", "user_id": "ann", "agent_id": None, "session_id": "s1",
         "content": "I moved to Lisbon in May and I love the trams there.", "keywords": ["lisbon", "trams"],
         "tags": ["place", "role:user"], "context": "User moved to Lisbon in May.", "metadata": {"role": "user"},
         "event_time": "2026-05-03T10:00:00Z", "created_at": "2026-05-03T10:00:01Z",
         "last_recalled_at": "2026-06-01T08:30:00Z", "recall_count": 2, "strength": 3.2, "importance": 0.5,
         "archived": False, "links": [_LINK]}
_ENTITY = {"id": "e2", "name": "Lisbon", "type": "place", "user_id": "ann", "summary": "", "aliases": [],
           "attributes": {}, "created_at": "2026-05-03T10:00:05Z", "last_seen_at": "2026-05-03T10:00:05Z"}
_KEY = {"id": "k7f3a", "tenant_id": "acme", "label": "support-bot", "created_at": "2026-05-01T09:00:00Z",
        "revoked_at": None}


class LinkOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_LINK]})
    source: str
    target: str
    kind: str
    weight: float
    created_at: datetime | None = None


class NoteOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_NOTE]})
    id: str
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    content: str
    keywords: list[str]
    tags: list[str]
    context: str
    metadata: dict[str, Any]
    event_time: datetime
    created_at: datetime
    last_recalled_at: datetime | None
    recall_count: int
    strength: float
    importance: float
    archived: bool
    links: list[LinkOut] = []


class NoteList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"results": [_NOTE], "limit": 50, "offset": 0, "next_offset": None}]})
    results: list[NoteOut]
    limit: int
    offset: int
    next_offset: int | None = Field(None, description="pass as offset for the next page; null on the last page")


class AddResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"results": [_NOTE]}]})
    results: list[NoteOut]


class HitOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": _NOTE["id"], "content": _NOTE["content"], "metadata": {"role": "user"},
                                                              "event_time": "2026-05-03T10:00:00Z", "score": 0.93, "user_id": "ann",
                                                              "relevance": 1.0, "retention": 0.88, "recency": 0.63, "dense": 0.71, "bm25": 7.4,
                                                              "speaker_factor": 1.0}]})
    id: str
    content: str
    metadata: dict[str, Any]
    event_time: datetime
    score: float
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    relevance: float | None = None
    retention: float | None = None
    recency: float | None = None
    dense: float | None = None
    bm25: float | None = None
    speaker_factor: float | None = None


class FactHitOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"kind": "fact", "id": "f1", "content": "User lives in Lisbon (since 2026-05)", "score": 0.61,
                                                              "similarity": 0.51, "distance": 0, "predicate": "lives_in", "subject": "User",
                                                              "object": "Lisbon", "fact": "User lives in Lisbon", "valid_at": "2026-05-01T00:00:00Z",
                                                              "invalid_at": None, "created_at": "2026-05-03T10:00:05Z", "expired_at": None,
                                                              "note_ids": [_NOTE["id"]], "user_id": "ann"}]})
    kind: Literal["fact"] = "fact"
    id: str
    content: str = Field(description="the fact rendered with its validity")
    score: float
    similarity: float
    distance: int | None = Field(None, description="hops from an entity the query names")
    predicate: str
    subject: str
    object: str
    fact: str
    valid_at: datetime | None
    invalid_at: datetime | None
    created_at: datetime | None
    expired_at: datetime | None
    note_ids: list[str]
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None


class SearchResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"results": [
        {"id": "3f1c2a9e-...", "content": "I moved to Lisbon in May", "metadata": {"role": "user"},
         "event_time": "2026-05-03T10:00:00Z", "score": 0.93, "user_id": "ann"}], "facts": [
        {"kind": "fact", "id": "f1", "content": "User lives in Lisbon (since 2026-05)", "score": 0.61,
         "similarity": 0.51, "distance": 0, "predicate": "lives_in", "subject": "User", "object": "Lisbon",
         "fact": "User lives in Lisbon", "valid_at": "2026-05-01T00:00:00Z", "invalid_at": None,
         "created_at": "2026-05-03T10:00:05Z", "expired_at": None, "note_ids": ["3f1c2a9e-..."], "user_id": "ann"}]}]})
    results: list[HitOut]
    facts: list[FactHitOut] = []


class HistoryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": 12, "note_id": _NOTE["id"], "action": "evolve", "actor": "evolve",
                                                              "old": {"keywords": ["lisbon"], "tags": ["place"]},
                                                              "new": {"keywords": ["lisbon", "trams"], "tags": ["place"], "cause": "9b8a7c6d-..."},
                                                              "at": "2026-05-04T18:00:00Z"}]})
    id: int
    note_id: str
    action: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    actor: str
    at: datetime


class IdsResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"ids": [_NOTE["id"]]}]})
    ids: list[str]


class ImportResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"imported": 120}]})
    imported: int


class TenantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"id": "acme"}]})
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")


class TenantOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "acme", "created_at": "2026-05-01T09:00:00Z", "disabled": False}]})
    id: str
    created_at: datetime
    disabled: bool


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"label": "support-bot"}]})
    label: str = Field("", max_length=200)


class KeyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_KEY]})
    id: str
    tenant_id: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    model_config = ConfigDict(json_schema_extra={"examples": [{**_KEY, "key": "egm_k7f3a_<secret shown once>"}]})
    key: str = Field(description="the clear key; shown once, store it now")


class EntityOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ENTITY]})
    id: str
    name: str
    type: str
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    summary: str = ""
    aliases: list[str] = []
    attributes: dict[str, Any] = {}
    created_at: datetime | None = None
    last_seen_at: datetime | None = None


class FactOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "f1", "fact": "User lives in Lisbon", "rendered": "User lives in Lisbon (since 2026-05, previously Berlin)",
        "predicate": "lives_in", "subject": "User", "subject_id": "e1", "object": "Lisbon", "object_id": "e2",
        "user_id": "ann", "valid_at": "2026-05-01T00:00:00Z", "invalid_at": None, "created_at": "2026-05-03T10:00:00Z",
        "expired_at": None, "superseded_by": None, "previous": "Berlin", "current": True}]})
    id: str
    fact: str
    rendered: str
    predicate: str
    subject: str
    subject_id: str
    object: str
    object_id: str
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    valid_at: datetime | None
    invalid_at: datetime | None
    created_at: datetime
    expired_at: datetime | None
    superseded_by: str | None
    previous: str | None
    current: bool


class NeighbourOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"entity": _ENTITY, "distance": 1}]})
    entity: EntityOut
    distance: int


class JobOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": 41, "kind": "graph", "note_id": _NOTE["id"], "state": "done", "attempts": 1,
                                                              "max_attempts": 5, "next_run_at": "2026-05-03T10:00:01Z", "last_error": None,
                                                              "result": {"facts": 1, "entities": 2}, "created_at": "2026-05-03T10:00:01Z",
                                                              "updated_at": "2026-05-03T10:00:02Z"}]})
    id: int
    kind: str
    note_id: str | None
    state: Literal["queued", "running", "done", "failed"]
    attempts: int
    max_attempts: int
    next_run_at: datetime
    last_error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
