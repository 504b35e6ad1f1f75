"""Contradiction handling on the bi-temporal model, as pure functions.

A functional predicate (one value at a time: lives_in, works_at, diet, ...) cannot hold two objects
over overlapping world intervals. A new fact N against an older E with the same subject and
predicate and an overlapping interval:
- E started no later than N: E is closed, ``E.invalid_at = N.valid_at`` (``expired_at`` = now);
- E started after N (N is news about the past): N is closed instead, ``N.invalid_at = E.valid_at``;
- N is a correction ("actually ..."): E never held, ``E.invalid_at = E.valid_at``, N takes E's start.
A restatement of the current value with an earlier start ("I've lived in Paris since 2021") moves
the start back (``Decision.starts``) and closes what it now overlaps, as a newer statement would.
Candidates are only the facts of the same subject and predicate (never the whole graph: Graphiti
#1728). Nothing is deleted; closing an interval is the only change.

Usage: ``decide(NewFact(...), store.facts_of(subject_id, predicate))``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from graph.types import Fact

FUNCTIONAL = frozenset({"lives_in", "works_at", "job_title", "diet", "partner", "studies_at", "from", "age",
                        "name", "mother", "father", "boss"})


def is_functional(predicate: str) -> bool:
    """True when the predicate holds one value at a time for a subject."""
    return predicate in FUNCTIONAL or predicate.startswith(("favorite_", "count_", "duration_"))


@dataclass(frozen=True)
class NewFact:
    """The parts of an incoming fact that contradiction handling looks at."""

    id: str
    subject_id: str
    predicate: str
    object_id: str
    valid_at: datetime | None
    invalid_at: datetime | None = None
    correction: bool = False
    corrects_object_id: str | None = None  # the wrong value, when named: only its fact is voided


@dataclass(frozen=True)
class Closure:
    """Close fact ``fact_id`` at ``invalid_at``; ``superseded_by`` names the fact that did it."""

    fact_id: str
    invalid_at: datetime | None
    superseded_by: str | None


@dataclass
class Decision:
    """What to do with a new fact: drop it as a duplicate, or store it and close some facts."""

    duplicate_of: str | None = None
    close: list[Closure] = field(default_factory=list)
    valid_at: datetime | None = None
    invalid_at: datetime | None = None
    superseded_by: str | None = None
    starts: datetime | None = None  # with duplicate_of: the restated fact's earlier start


def overlaps(a_start: datetime | None, a_end: datetime | None, b_start: datetime | None, b_end: datetime | None) -> bool:
    """Half-open intervals [start, end) with None as the open past/future; zero-length never overlaps."""
    if a_start is not None and a_end is not None and a_end <= a_start:
        return False
    if b_start is not None and b_end is not None and b_end <= b_start:
        return False
    return (a_start is None or b_end is None or a_start < b_end) and (b_start is None or a_end is None or b_start < a_end)


def decide(new: NewFact, existing: Sequence[Fact]) -> Decision:
    """Resolve ``new`` against facts on the same subject and predicate. Usage: see module doc."""
    same = [e for e in existing if e.subject_id == new.subject_id and e.predicate == new.predicate and e.id != new.id]
    decision = Decision(valid_at=new.valid_at, invalid_at=new.invalid_at)
    for e in same:
        if e.object_id == new.object_id and e.is_current and new.invalid_at is None:
            return _restated(new, e, same)
    if not is_functional(new.predicate):
        return decision
    for e in sorted(same, key=lambda f: (f.valid_at is not None, f.valid_at or f.created_at)):
        if e.object_id == new.object_id:
            continue
        if not overlaps(e.valid_at, e.invalid_at, decision.valid_at, decision.invalid_at):
            continue
        _resolve_pair(new, e, decision)
    return decision


def _restated(new: NewFact, e: Fact, same: Sequence[Fact]) -> Decision:
    decision = Decision(duplicate_of=e.id, valid_at=new.valid_at)
    if new.valid_at is None or e.valid_at is None or new.valid_at >= e.valid_at:
        return decision
    decision.starts = new.valid_at
    if not is_functional(new.predicate):
        return decision
    for f in same:
        if f.object_id != e.object_id and overlaps(f.valid_at, f.invalid_at, new.valid_at, e.valid_at):
            # Started before the new start: it ends there; started inside the gap: it never held.
            end = new.valid_at if _starts_no_later(f.valid_at, new.valid_at) else f.valid_at
            decision.close.append(Closure(f.id, end, e.id))
    return decision


def _resolve_pair(new: NewFact, e: Fact, decision: Decision) -> None:
    if new.correction and e.is_current and new.corrects_object_id in (None, e.object_id):
        decision.close.append(Closure(e.id, e.valid_at, new.id))
        if e.valid_at is not None and (decision.valid_at is None or e.valid_at < decision.valid_at):
            decision.valid_at = e.valid_at
    elif _starts_no_later(e.valid_at, decision.valid_at):
        decision.close.append(Closure(e.id, decision.valid_at, new.id))
    else:
        decision.invalid_at = e.valid_at
        decision.superseded_by = e.id


def _starts_no_later(a: datetime | None, b: datetime | None) -> bool:
    return a is None or (b is not None and a <= b)


def endings(predicate: str, object_id: str, at: datetime | None, existing: Sequence[Fact]) -> list[Closure]:
    """Closures for a negated statement ("I left Google"): current facts with that object end at ``at``."""
    return [Closure(e.id, at, None) for e in existing
            if e.predicate == predicate and e.object_id == object_id and e.is_current]


def current_as_of(facts: Sequence[Fact], when: datetime) -> list[Fact]:
    """The facts that held in the world at ``when``."""
    return [f for f in facts if f.valid_as_of(when)]
