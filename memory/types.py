"""Domain types of the memory layer: plain dataclasses, no storage concerns."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memory.errors import InvalidInput, ScopeRequired

SCOPE_MAX_CHARS = 255  # the scope columns are VARCHAR(255): PostgreSQL refuses longer, SQLite would not


@dataclass(frozen=True)
class Scope:
    """Who a note belongs to. At least one field is required. Usage: ``Scope(user_id="ann")``."""

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("user_id", "agent_id", "session_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ScopeRequired(f"{name} must be a non-empty string when given")
            if value is not None and len(value) > SCOPE_MAX_CHARS:
                raise InvalidInput(f"{name} is over {SCOPE_MAX_CHARS} characters")
        if self.is_empty():
            raise ScopeRequired("one of user_id, agent_id or session_id is required")

    def is_empty(self) -> bool:
        return self.user_id is None and self.agent_id is None and self.session_id is None

    def as_dict(self) -> dict[str, str]:
        """Only the fields that are set."""
        pairs = (("user_id", self.user_id), ("agent_id", self.agent_id), ("session_id", self.session_id))
        return {k: v for k, v in pairs if v is not None}

    def contains(self, other: Scope) -> bool:
        """True when every field set here is equal in ``other`` (a search scope matches a note)."""
        return all(getattr(other, k) == v for k, v in self.as_dict().items())


@dataclass
class Note:
    """One Zettelkasten note."""

    id: str
    scope: Scope
    content: str
    keywords: list[str]
    tags: list[str]
    context: str
    metadata: dict[str, Any]
    created_at: datetime
    event_time: datetime
    last_recalled_at: datetime | None
    recall_count: int
    strength: float
    importance: float
    archived: bool = False
    links: list[Link] = field(default_factory=list)

    @property
    def last_touched(self) -> datetime:
        """The clock start of the forgetting curve: last recall, else when it happened."""
        return self.last_recalled_at or self.event_time


@dataclass(frozen=True)
class Idempotency:
    """A client's idempotency key for one add and the digest of the request made under it."""

    key: str
    request_hash: str


@dataclass(frozen=True)
class RankState:
    """What ranking needs of a note (its forgetting-curve clock, age, session and who said it),
    read for a whole candidate pool; the full notes are read only for the hits that win."""

    session_id: str | None
    event_time: datetime
    last_touched: datetime
    strength: float
    role: str | None = None


@dataclass(frozen=True)
class Link:
    """A typed, directed link between two notes, by note id."""

    source_id: str
    target_id: str
    kind: str
    weight: float
    created_at: datetime


@dataclass(frozen=True)
class HistoryEntry:
    """One audit record: what changed on a note, who changed it, and when."""

    id: int
    note_id: str
    action: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    actor: str
    at: datetime


@dataclass(frozen=True)
class NoteDraft:
    """What note construction produces before the note is stored."""

    content: str
    keywords: list[str]
    tags: list[str]
    context: str


@dataclass(frozen=True)
class IndexedNote:
    """What a derived index needs of a note to (re)build itself."""

    id: str
    scope: Scope
    content: str
    archived: bool
    embedding: bytes | None
