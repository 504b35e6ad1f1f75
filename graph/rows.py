"""Conversion between the graph's SQL rows and its domain types (the store stays about queries)."""
from __future__ import annotations

import numpy as np

from graph.schema import EntityRow, EpisodeRow, FactRow, MergeRow
from graph.types import Entity, Episode, Fact, Merge
from memory.types import Scope


def scope_of(row: EntityRow | FactRow | EpisodeRow) -> Scope:
    return Scope(user_id=row.user_id, agent_id=row.agent_id, session_id=row.session_id)


def entity_from_row(row: EntityRow) -> Entity:
    return Entity(id=row.id, name=row.name, norm_name=row.norm_name, type=row.type, scope=scope_of(row),
                  summary=row.summary or "", aliases=list(row.aliases or []), attributes=dict(row.attributes or {}),
                  created_at=row.created_at, last_seen_at=row.last_seen_at, merged_into=row.merged_into)


def fact_from_row(row: FactRow) -> Fact:
    return Fact(id=row.id, subject_id=row.subject_id, object_id=row.object_id, predicate=row.predicate,
                fact=row.fact, scope=scope_of(row), episode_ids=list(row.episode_ids or []),
                valid_at=row.valid_at, invalid_at=row.invalid_at, created_at=row.created_at,
                expired_at=row.expired_at, superseded_by=row.superseded_by, valid_precision=row.valid_precision)


def episode_from_row(row: EpisodeRow) -> Episode:
    return Episode(id=row.id, note_id=row.note_id, content=row.content, scope=scope_of(row),
                   reference_time=row.reference_time, created_at=row.created_at, extractor=row.extractor,
                   error=row.error)


def merge_from_row(row: MergeRow) -> Merge:
    return Merge(id=row.id, kept_id=row.kept_id, merged_id=row.merged_id, reason=row.reason, at=row.at,
                 undone_at=row.undone_at)


def entity_row(entity: Entity, vector: np.ndarray | None) -> EntityRow:
    return EntityRow(id=entity.id, name=entity.name, norm_name=entity.norm_name, type=entity.type,
                     summary=entity.summary, aliases=list(entity.aliases), attributes=dict(entity.attributes),
                     embedding=to_bytes(vector), created_at=entity.created_at, last_seen_at=entity.last_seen_at,
                     merged_into=None, **entity.scope.as_dict())


def fact_row(fact: Fact, vector: np.ndarray | None) -> FactRow:
    return FactRow(id=fact.id, subject_id=fact.subject_id, object_id=fact.object_id, predicate=fact.predicate,
                   fact=fact.fact, embedding=to_bytes(vector), episode_ids=list(fact.episode_ids),
                   valid_at=fact.valid_at, valid_precision=fact.valid_precision, invalid_at=fact.invalid_at,
                   created_at=fact.created_at,
                   expired_at=fact.expired_at, superseded_by=fact.superseded_by, **fact.scope.as_dict())


def to_bytes(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32)
