"""Domain types of the temporal graph: plain dataclasses, no storage concerns.

Usage: ``str(fact)`` → ``"ann lives in Paris (since 2023-05, previously Berlin)"``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memory.types import Link, Scope

USER = "@user"
CONTRADICTS = "contradicts"  # the note link kind of memory.linking (graph may not import it)  # the extracted name that stands for the scope's user ("I", "my", "me")


@dataclass
class Entity:
    """A node: a person, place, organisation, pet, thing or value."""

    id: str
    name: str
    norm_name: str
    type: str
    scope: Scope
    summary: str = ""
    aliases: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    last_seen_at: datetime | None = None
    merged_into: str | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"


@dataclass
class Fact:
    """An edge with its world interval [valid_at, invalid_at) and system interval [created_at, expired_at)."""

    id: str
    subject_id: str
    object_id: str
    predicate: str
    fact: str
    scope: Scope
    episode_ids: list[str]
    valid_at: datetime | None
    invalid_at: datetime | None
    created_at: datetime
    expired_at: datetime | None = None
    superseded_by: str | None = None
    subject_name: str = ""
    object_name: str = ""
    previous: str | None = None  # object of the fact this one replaced, for rendering
    valid_precision: str | None = None  # how precisely valid_at was said: "year", "month", "day"
    end_precision: str | None = None  # the same for invalid_at (from the fact that closed it), for rendering

    @property
    def is_current(self) -> bool:
        """Still true in the world as far as Engram knows."""
        return self.invalid_at is None

    def valid_as_of(self, when: datetime) -> bool:
        """True when the fact held in the world at ``when``."""
        starts = self.valid_at is None or self.valid_at <= when
        return starts and (self.invalid_at is None or when < self.invalid_at)

    def render(self) -> str:
        """The fact sentence with its validity, e.g. ``"... (since 2023-05, previously Berlin)"``."""
        notes = []
        if self.valid_at is not None:
            notes.append(f"since {format_time(self.valid_at, self.valid_precision)}")
        if self.invalid_at is not None:
            notes.append(f"until {format_time(self.invalid_at, self.end_precision)}")
        if self.previous:
            notes.append(f"previously {self.previous}")
        return f"{self.fact} ({', '.join(notes)})" if notes else self.fact

    def __str__(self) -> str:
        return self.render()


@dataclass(frozen=True)
class Episode:
    """One ingested message or note, with the time it speaks from."""

    id: str
    note_id: str | None
    content: str
    scope: Scope
    reference_time: datetime
    created_at: datetime
    extractor: str
    error: str | None = None


@dataclass(frozen=True)
class ExtractedEntity:
    """A mention found by an extractor. ``role`` is its relation to the user ("sister"), if said."""

    name: str
    type: str = "thing"
    role: str | None = None


@dataclass(frozen=True)
class ExtractedFact:
    """A statement found by an extractor; names refer to ExtractedEntity names (or USER).

    ``correction`` marks "actually, ..." restatements: the older value never held; ``corrects``
    names the wrong value when it was said ("..., not Paris"), so only that one is voided.
    ``negated`` marks endings ("I left Google"): it closes a matching fact instead of adding one.
    """

    subject: str
    predicate: str
    object: str
    sentence: str
    valid_at: datetime | None = None
    invalid_at: datetime | None = None
    correction: bool = False
    negated: bool = False
    corrects: str | None = None
    valid_precision: str | None = None


@dataclass
class Extraction:
    """What an extractor returns for one episode. ``error`` is set when extraction failed."""

    entities: list[ExtractedEntity] = field(default_factory=list)
    facts: list[ExtractedFact] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class Supersession:
    """An older fact closed by a newer one, with the notes behind each (for note links)."""

    old_fact_id: str
    new_fact_id: str
    old_note_ids: tuple[str, ...]
    new_note_ids: tuple[str, ...]


@dataclass
class IngestResult:
    """What one ``TemporalGraph.ingest`` call changed."""

    episode: Episode
    entities: list[Entity] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    closed: list[Fact] = field(default_factory=list)
    superseded: list[Supersession] = field(default_factory=list)

    @property
    def superseded_note_ids(self) -> list[str]:
        """Notes whose facts were superseded by this episode, each once."""
        return list(dict.fromkeys(n for s in self.superseded for n in s.old_note_ids))

    def note_links(self, now: datetime) -> list[Link]:
        """``contradicts`` links from the note holding the newer fact to the note it superseded,
        so notes and graph tell the same story. Usage: ``store.add_links(result.note_links(now))``."""
        pairs = {(new, old) for s in self.superseded for new in s.new_note_ids for old in s.old_note_ids if new != old}
        return [Link(new, old, CONTRADICTS, 1.0, now) for new, old in sorted(pairs)]


@dataclass(frozen=True)
class Merge:
    """A recorded entity merge (reversible with ``TemporalGraph.unmerge``)."""

    id: str
    kept_id: str
    merged_id: str
    reason: str
    at: datetime
    undone_at: datetime | None = None


def format_time(when: datetime, precision: str | None = None) -> str:
    """A compact date as precise as it was said: ``2023``, ``2023-05`` or ``2023-05-17``; when the
    precision is unknown, ``2023-05`` for the first of a month at midnight."""
    if precision == "year":
        return when.strftime("%Y")
    if precision == "month":
        return when.strftime("%Y-%m")
    if precision in ("day", "week"):
        return when.strftime("%Y-%m-%d")
    if when.day == 1 and (when.hour, when.minute, when.second) == (0, 0, 0):
        return when.strftime("%Y-%m")
    return when.strftime("%Y-%m-%d")
