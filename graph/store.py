"""The SQL store of the temporal graph: one transaction per write, facts closed but never deleted.

Foreign (SQLAlchemy) errors become StorageError here (opening) and in memory.transactions (queries).
Usage: ``store = GraphStore(engine); store.write(plan)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from graph.rows import (
    entity_from_row,
    entity_row,
    episode_from_row,
    fact_from_row,
    fact_row,
    from_bytes,
    merge_from_row,
)
from graph.schema import EntityRow, EpisodeRow, FactRow, MentionRow, MergeRow
from graph.temporal import Closure
from graph.types import Entity, Episode, Fact, Merge
from memory.errors import InvalidInput, NotFound, StorageError
from memory.ids import new_id
from memory.migrate import MigrationTree, upgrade
from memory.transactions import read_tx, session_tx
from memory.types import Scope

SqlEngine = Engine  # re-exported so the facade can name the type without importing sqlalchemy
GRAPH_MIGRATIONS = MigrationTree(Path(__file__).parent / "migrations", "alembic_version_graph", "graph_entities")


@dataclass
class EntityTouch:
    """Changes to a known entity seen again: newer last-seen time, new aliases, a learned role."""

    entity_id: str
    seen_at: datetime
    aliases: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    type: str | None = None


@dataclass
class WritePlan:
    """Everything one ingested episode changes, written in one transaction."""

    episode: Episode
    now: datetime
    new_entities: list[tuple[Entity, np.ndarray | None]] = field(default_factory=list)
    touches: list[EntityTouch] = field(default_factory=list)
    new_facts: list[tuple[Fact, np.ndarray | None]] = field(default_factory=list)
    closures: list[Closure] = field(default_factory=list)
    restated: list[str] = field(default_factory=list)  # fact ids the episode states again
    starts: dict[str, tuple[datetime, str | None]] = field(default_factory=dict)  # restated id → earlier start
    mentions: list[str] = field(default_factory=list)


class GraphStore:
    """Episodes, entities, facts, mentions and merges on one SQLAlchemy engine (tables migrated here)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        try:
            upgrade(engine, GRAPH_MIGRATIONS)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot create graph tables: {exc}") from exc

    def _tx(self) -> AbstractContextManager[Session]:
        return session_tx(self._sessions)

    # ---- writes -------------------------------------------------------------------------

    def write(self, plan: WritePlan) -> list[Fact]:
        """Apply one episode's plan atomically; returns the closed facts as they are now."""
        with self._tx() as s:
            ep = plan.episode
            s.add(EpisodeRow(id=ep.id, note_id=ep.note_id, content=ep.content, reference_time=ep.reference_time,
                             created_at=ep.created_at, extractor=ep.extractor, error=ep.error, **ep.scope.as_dict()))
            for entity, vector in plan.new_entities:
                s.add(entity_row(entity, vector))
            s.flush()
            _preload(s, EntityRow, [t.entity_id for t in plan.touches])
            _preload(s, FactRow, plan.restated + [c.fact_id for c in plan.closures])
            for touch in plan.touches:
                _touch(s, touch)
            for fact, vector in plan.new_facts:
                s.add(fact_row(fact, vector))
            s.flush()  # closures may target facts added just above
            for fact_id in plan.restated:
                row = s.get(FactRow, fact_id)
                assert row is not None, fact_id
                row.episode_ids = [*row.episode_ids, ep.id]
                if fact_id in plan.starts:
                    row.valid_at, row.valid_precision = plan.starts[fact_id]
            closed = [_close(s, c, plan.now) for c in plan.closures]
            for entity_id in dict.fromkeys(plan.mentions):
                s.add(MentionRow(episode_id=ep.id, entity_id=entity_id))
            return closed

    def retract(self, episode_ids: Sequence[str], scope: Scope, now: datetime) -> list[Fact]:
        """Withdraw what some episodes said (their note was deleted or rewritten); returns the facts
        changed. A fact only they supported gets an empty world interval (it never held, as a
        correction) and is expired; a fact others restated just loses them as a source. A fact a
        withdrawn one had closed takes over the withdrawn one's end (reopened if it was current), so
        Paris -> Lisbon -> Rome with Lisbon withdrawn reads Paris until Rome. Nothing is deleted."""
        gone = set(episode_ids)
        with self._tx() as s:
            rows = s.scalars(select(FactRow).where(*_scope_clauses(FactRow, scope)).order_by(FactRow.created_at)).all()
            by_id = {r.id: r for r in rows}
            changed: dict[str, FactRow] = {}
            withdrawn: set[str] = set()
            for row in rows:
                if not gone & set(row.episode_ids):
                    continue
                row.episode_ids = [e for e in row.episode_ids if e not in gone]
                changed[row.id] = row
                if row.episode_ids:
                    continue
                withdrawn.add(row.id)
                end, closer = row.invalid_at, row.superseded_by
                row.invalid_at, row.expired_at, row.superseded_by = row.valid_at or row.created_at, now, None
                for prior in (r for r in rows if r.superseded_by == row.id and r.id not in withdrawn):
                    prior.invalid_at, prior.superseded_by = end, closer if closer in by_id else None
                    prior.expired_at = now if end is not None else None
                    changed[prior.id] = prior
            s.flush()
            return [fact_from_row(r) for r in changed.values()]

    def signature(self) -> tuple[Any, ...]:
        """A cheap fingerprint of everything the networkx view holds: it changes when another
        process ingests (an episode), closes, retracts or reopens facts (the counts of closed,
        expired and superseded facts, and the latest expiry, move: a retraction that closes one
        fact and reopens another still moves the superseded count and the expiry), or merges
        entities. One statement of counts; a full scan of the facts table, which is what a view
        rebuild reads anyway."""
        parts = [func.count(EpisodeRow.id), func.count(FactRow.id), func.count(FactRow.expired_at),
                 func.count(FactRow.invalid_at), func.count(FactRow.superseded_by), func.max(FactRow.created_at),
                 func.max(FactRow.expired_at), func.count(EntityRow.merged_into), func.count(MergeRow.undone_at),
                 func.count(MergeRow.id)]
        tables = [EpisodeRow, FactRow, FactRow, FactRow, FactRow, FactRow, FactRow, EntityRow, MergeRow, MergeRow]
        stmt = select(*[select(part).select_from(table).scalar_subquery() for part, table in zip(parts, tables)])
        with self._tx() as s:
            return tuple(s.execute(stmt).one())

    def episodes_of_note(self, note_id: str) -> list[str]:
        """Ids of the episodes ingested from a note, oldest first."""
        with self._tx() as s:
            stmt = select(EpisodeRow.id).where(EpisodeRow.note_id == note_id).order_by(EpisodeRow.created_at)
            return list(s.scalars(stmt))

    def merge(self, kept_id: str, merged_id: str, reason: str, now: datetime) -> Merge:
        """Fold ``merged_id`` into ``kept_id``, recording every moved row so it can be undone."""
        if kept_id == merged_id:
            raise InvalidInput("cannot merge an entity into itself")
        with self._tx() as s:
            kept, merged = _live(s, kept_id), _live(s, merged_id)
            moved: dict[str, Any] = {"subject": [], "object": [], "mentions": [], "aliases": []}
            for row in s.scalars(select(FactRow).where(or_(FactRow.subject_id == merged_id, FactRow.object_id == merged_id))):
                for end in ("subject", "object"):
                    if getattr(row, f"{end}_id") == merged_id:
                        setattr(row, f"{end}_id", kept_id)
                        moved[end].append(row.id)
            for m in s.scalars(select(MentionRow).where(MentionRow.entity_id == merged_id)):
                m.entity_id = kept_id
                moved["mentions"].append(m.id)
            new_aliases = [a for a in [merged.name, *merged.aliases] if a not in kept.aliases and a != kept.name]
            kept.aliases, moved["aliases"] = [*kept.aliases, *new_aliases], new_aliases
            merged.merged_into = kept_id
            row = MergeRow(id=new_id(), kept_id=kept_id, merged_id=merged_id, reason=reason, moved=moved, at=now)
            s.add(row)
            return merge_from_row(row)

    def unmerge(self, merge_id: str, now: datetime) -> Merge:
        """Undo a merge exactly: facts, mentions and aliases go back to the merged entity."""
        with self._tx() as s:
            row = s.get(MergeRow, merge_id)
            if row is None:
                raise NotFound(f"no merge {merge_id!r}")
            if row.undone_at is not None:
                raise InvalidInput(f"merge {merge_id!r} was already undone")
            for end in ("subject", "object"):
                for fact in s.scalars(select(FactRow).where(FactRow.id.in_(row.moved[end]))):
                    setattr(fact, f"{end}_id", row.merged_id)
            for m in s.scalars(select(MentionRow).where(MentionRow.id.in_(row.moved["mentions"]))):
                m.entity_id = row.merged_id
            kept, merged = s.get(EntityRow, row.kept_id), s.get(EntityRow, row.merged_id)
            assert kept is not None and merged is not None
            kept.aliases = [a for a in kept.aliases if a not in row.moved["aliases"]]
            merged.merged_into = None
            row.undone_at = now
            return merge_from_row(row)

    # ---- reads --------------------------------------------------------------------------

    def entity(self, entity_id: str) -> Entity:
        """One entity (merged ones too). Raises NotFound."""
        with self._tx() as s:
            row = s.get(EntityRow, entity_id)
            if row is None:
                raise NotFound(f"no entity {entity_id!r}")
            return entity_from_row(row)

    def entities(self, scope: Scope | None, *, include_merged: bool = False) -> list[Entity]:
        """Entities of a scope (all scopes when None), oldest first."""
        return [e for e, _ in self.entities_with_vectors(scope, include_merged=include_merged)]

    def entities_with_vectors(self, scope: Scope | None, *,
                              include_merged: bool = False) -> list[tuple[Entity, np.ndarray | None]]:
        """Entities of a scope with their name embeddings (the resolution candidates)."""
        stmt = select(EntityRow).where(*_scope_clauses(EntityRow, scope))
        if not include_merged:
            stmt = stmt.where(EntityRow.merged_into.is_(None))
        with self._tx() as s:
            return [(entity_from_row(r), from_bytes(r.embedding))
                    for r in s.scalars(stmt.order_by(EntityRow.created_at, EntityRow.id))]

    def facts(self, scope: Scope | None, *, entity_id: str | None = None, predicate: str | None = None,
              open_at: datetime | None = None) -> list[Fact]:
        """Facts of a scope, optionally on one entity (either end) and predicate, oldest first;
        with ``open_at``, only those not closed by then (current ones)."""
        stmt = select(FactRow).where(*_scope_clauses(FactRow, scope))
        if entity_id is not None:
            stmt = stmt.where(or_(FactRow.subject_id == entity_id, FactRow.object_id == entity_id))
        if predicate is not None:
            stmt = stmt.where(FactRow.predicate == predicate)
        if open_at is not None:
            stmt = stmt.where(_open(open_at))
        with self._tx() as s:
            return [fact_from_row(r) for r in s.scalars(stmt.order_by(FactRow.created_at, FactRow.id))]

    def facts_by_id(self, fact_ids: Sequence[str]) -> dict[str, Fact]:
        """Facts by id (missing ids are absent)."""
        with self._tx() as s:
            return {r.id: fact_from_row(r) for r in s.scalars(select(FactRow).where(FactRow.id.in_(list(fact_ids))))}

    def facts_on(self, entity_ids: Sequence[str], open_at: datetime | None = None) -> list[Fact]:
        """Facts with either end in ``entity_ids`` (not closed by ``open_at`` when given), oldest first."""
        ids = list(set(entity_ids))
        stmt = select(FactRow).where(or_(FactRow.subject_id.in_(ids), FactRow.object_id.in_(ids)))
        if open_at is not None:
            stmt = stmt.where(_open(open_at))
        with self._tx() as s:
            return [fact_from_row(r) for r in s.scalars(stmt.order_by(FactRow.created_at, FactRow.id))]

    def facts_of(self, subject_id: str, predicate: str) -> list[Fact]:
        """Every fact (closed ones too) with this subject and predicate: the contradiction candidates."""
        stmt = select(FactRow).where(FactRow.subject_id == subject_id, FactRow.predicate == predicate)
        with self._tx() as s:
            return [fact_from_row(r) for r in s.scalars(stmt.order_by(FactRow.created_at, FactRow.id))]

    def fact_vectors(self, scope: Scope | None, open_at: datetime | None = None) -> list[tuple[Fact, np.ndarray | None]]:
        """Facts with their sentence embeddings (not closed by ``open_at`` when given), for cosine search."""
        stmt = select(FactRow).where(*_scope_clauses(FactRow, scope))
        if open_at is not None:
            stmt = stmt.where(_open(open_at))
        with self._tx() as s:
            return [(fact_from_row(r), from_bytes(r.embedding)) for r in s.scalars(stmt.order_by(FactRow.id))]

    def has_facts(self, scope: Scope | None) -> bool:
        """Whether a scope holds any fact (closed ones included): one indexed probe, so a search can
        skip the graph, and the embedding its fact search needs, for scopes without one."""
        stmt = select(FactRow.id).where(*_scope_clauses(FactRow, scope)).limit(1)
        with read_tx(self._engine) as conn:
            return conn.execute(stmt).first() is not None

    def fact_embeddings(self, fact_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Sentence embeddings of the given facts (those that have one)."""
        stmt = select(FactRow.id, FactRow.embedding).where(FactRow.id.in_(list(set(fact_ids))))
        with self._tx() as s:
            return {i: v for i, raw in s.execute(stmt) if (v := from_bytes(raw)) is not None}

    def names(self, entity_ids: Sequence[str]) -> dict[str, str]:
        """Entity names by id."""
        with self._tx() as s:
            rows = s.execute(select(EntityRow.id, EntityRow.name).where(EntityRow.id.in_(list(set(entity_ids)))))
            return {i: n for i, n in rows}

    def predecessors(self, fact_ids: Sequence[str]) -> dict[str, Fact]:
        """For each fact id, the fact it superseded (if any)."""
        with self._tx() as s:
            rows = s.scalars(select(FactRow).where(FactRow.superseded_by.in_(list(fact_ids))).order_by(FactRow.valid_at))
            return {r.superseded_by: fact_from_row(r) for r in rows if r.superseded_by}

    def note_ids(self, episode_ids: Sequence[str]) -> dict[str, str]:
        """Note id of each episode that has one."""
        with self._tx() as s:
            rows = s.execute(select(EpisodeRow.id, EpisodeRow.note_id).where(EpisodeRow.id.in_(list(episode_ids))))
            return {e: n for e, n in rows if n is not None}

    def episodes(self, scope: Scope | None = None) -> list[Episode]:
        """Episodes of a scope, in reference-time order."""
        stmt = select(EpisodeRow).where(*_scope_clauses(EpisodeRow, scope))
        with self._tx() as s:
            return [episode_from_row(r) for r in s.scalars(stmt.order_by(EpisodeRow.reference_time, EpisodeRow.id))]

    def merges(self) -> list[Merge]:
        with self._tx() as s:
            return [merge_from_row(r) for r in s.scalars(select(MergeRow).order_by(MergeRow.at, MergeRow.id))]

    def mentions(self, episode_id: str) -> list[str]:
        """Entity ids an episode mentions."""
        with self._tx() as s:
            return list(s.scalars(select(MentionRow.entity_id).where(MentionRow.episode_id == episode_id).order_by(MentionRow.id)))


def _preload(s: Session, table: Any, ids: list[str]) -> None:
    """One SELECT for rows the loop below reads by id (``Session.get`` then hits the identity map)."""
    if ids:
        s.scalars(select(table).where(table.id.in_(list(set(ids))))).all()


def _touch(s: Session, touch: EntityTouch) -> None:
    row = s.get(EntityRow, touch.entity_id)
    assert row is not None, touch.entity_id
    row.last_seen_at = max(row.last_seen_at, touch.seen_at)
    extra = [a for a in touch.aliases if a not in row.aliases and a != row.name]
    if extra:
        row.aliases = [*row.aliases, *extra]
    if touch.attributes:
        row.attributes = {**touch.attributes, **row.attributes}
    if touch.type and row.type in ("entity", "thing") and touch.type not in ("entity", "thing"):
        row.type = touch.type


def _close(s: Session, closure: Closure, now: datetime) -> Fact:
    row = s.get(FactRow, closure.fact_id)
    assert row is not None, closure.fact_id
    row.invalid_at = closure.invalid_at if closure.invalid_at is not None else now
    row.expired_at = now
    row.superseded_by = closure.superseded_by or row.superseded_by
    return fact_from_row(row)


def _open(at: datetime) -> Any:
    """Not closed by ``at``: still open, or closed at a later (planned) time."""
    return or_(FactRow.invalid_at.is_(None), FactRow.invalid_at > at)


def _live(s: Session, entity_id: str) -> EntityRow:
    row = s.get(EntityRow, entity_id)
    if row is None:
        raise NotFound(f"no entity {entity_id!r}")
    if row.merged_into is not None:
        raise InvalidInput(f"entity {entity_id!r} was merged into {row.merged_into!r}")
    return row


def _scope_clauses(table: Any, scope: Scope | None) -> list[Any]:
    if scope is None:
        return []
    return [getattr(table, k) == v for k, v in scope.as_dict().items()]
