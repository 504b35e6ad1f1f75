"""Turning one extraction into a write plan: resolve entities, embed, settle contradictions.

Reads the store (resolution candidates, facts on the same subject) but writes nothing; the facade
writes the plan in one transaction. Usage: ``Planner(store, embedder).plan(extraction, episode, owner, now)``.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from graph.protocols import JsonEngine, TextEmbedder
from graph.resolution import Candidate, normalise, resolve_entity
from graph.store import EntityTouch, GraphStore, WritePlan
from graph.temporal import NewFact, decide, endings
from graph.types import USER, Entity, Episode, ExtractedEntity, ExtractedFact, Extraction, Fact
from memory.types import Scope

USER_NORM = "@user"


@dataclass
class PlanOutcome:
    """The plan plus what the result needs: born-closed facts point at the fact that outlives them."""

    plan: WritePlan
    entity_ids: dict[str, str] = field(default_factory=dict)  # extracted name → entity id


def owner_scope(scope: Scope) -> Scope:
    """The scope a graph belongs to: the user's across sessions, else the agent's, else the session's."""
    if scope.user_id is not None:
        return Scope(user_id=scope.user_id)
    if scope.agent_id is not None:
        return Scope(agent_id=scope.agent_id)
    return scope


def user_name(owner: Scope) -> str:
    return owner.user_id or owner.agent_id or owner.session_id or "user"


class Planner:
    """Builds WritePlans. Usage: see module doc."""

    def __init__(self, store: GraphStore, embedder: TextEmbedder | None, llm: JsonEngine | None = None) -> None:
        self._store = store
        self._embedder = embedder
        self._llm = llm

    def plan(self, extraction: Extraction, episode: Episode, owner: Scope, now: datetime) -> PlanOutcome:
        """Resolve, embed and decide everything one episode adds."""
        out = PlanOutcome(WritePlan(episode=episode, now=now))
        candidates = [Candidate(e, v) for e, v in self._store.entities_with_vectors(owner)]
        user = self._user(candidates, owner, episode, out)
        names = [e.name for e in extraction.entities if e.name != USER]
        sentences = [_sentence(f.sentence, user.name) for f in extraction.facts]
        vectors = self._embed(names + sentences)
        for i, mention in enumerate(e for e in extraction.entities if e.name != USER):
            self._resolve(mention, vectors[i] if vectors is not None else None, candidates, episode, owner, out)
        pending: list[Fact] = []
        for j, fact in enumerate(extraction.facts):
            vec = vectors[len(names) + j] if vectors is not None else None
            self._fact(fact, sentences[j], vec, user, episode, owner, out, pending)
        return out

    def _embed(self, texts: list[str]) -> np.ndarray | None:
        if self._embedder is None or not texts:
            return None
        return self._embedder.embed(texts)

    def _user(self, candidates: list[Candidate], owner: Scope, episode: Episode, out: PlanOutcome) -> Entity:
        for c in candidates:
            if c.entity.norm_name == USER_NORM:
                out.plan.touches.append(EntityTouch(c.entity.id, episode.reference_time))
                out.entity_ids[USER] = c.entity.id
                return c.entity
        user = Entity(id=str(uuid.uuid4()), name=user_name(owner), norm_name=USER_NORM, type="person", scope=owner,
                      attributes={"role": "self"}, created_at=out.plan.now, last_seen_at=episode.reference_time)
        out.plan.new_entities.append((user, None))
        candidates.append(Candidate(user, None))
        out.entity_ids[USER] = user.id
        return user

    def _resolve(self, mention: ExtractedEntity, vec: np.ndarray | None, candidates: list[Candidate],
                 episode: Episode, owner: Scope, out: PlanOutcome) -> None:
        if mention.name in out.entity_ids:
            return
        match = resolve_entity(mention, candidates, vec, self._llm)
        attrs = {"role": mention.role} if mention.role else {}
        if match is not None:
            known = next(c.entity for c in candidates if c.entity.id == match.entity_id)
            aliases = [mention.name] if normalise(mention.name) != known.norm_name else []
            out.plan.touches.append(EntityTouch(known.id, episode.reference_time, aliases, attrs, mention.type))
            out.entity_ids[mention.name] = known.id
        else:
            entity = Entity(id=str(uuid.uuid4()), name=mention.name, norm_name=normalise(mention.name),
                            type=mention.type, scope=owner, attributes=attrs, created_at=out.plan.now,
                            last_seen_at=episode.reference_time)
            out.plan.new_entities.append((entity, vec))
            candidates.append(Candidate(entity, vec))
            out.entity_ids[mention.name] = entity.id
        out.plan.mentions.append(out.entity_ids[mention.name])

    def _fact(self, fact: ExtractedFact, sentence: str, vec: np.ndarray | None, user: Entity, episode: Episode,
              owner: Scope, out: PlanOutcome, pending: list[Fact]) -> None:
        subject_id, object_id = out.entity_ids.get(fact.subject), out.entity_ids.get(fact.object)
        if subject_id is None or object_id is None:
            return  # an extractor named an entity it did not list; nothing to attach the fact to
        if fact.predicate == "name" and subject_id == user.id:
            out.plan.touches.append(EntityTouch(user.id, episode.reference_time, [fact.object]))
            return
        existing = self._store.facts_of(subject_id, fact.predicate)
        existing += [p for p in pending if p.subject_id == subject_id and p.predicate == fact.predicate]
        valid_at = fact.valid_at or episode.reference_time
        if fact.negated:
            out.plan.closures.extend(endings(fact.predicate, object_id, valid_at, existing))
            return
        new_id = str(uuid.uuid4())
        decision = decide(NewFact(new_id, subject_id, fact.predicate, object_id, valid_at, fact.invalid_at,
                                  fact.correction), existing)
        if decision.duplicate_of is not None:
            if not any(p.id == decision.duplicate_of for p in pending):
                out.plan.restated.append(decision.duplicate_of)
            return
        new = Fact(id=new_id, subject_id=subject_id, object_id=object_id, predicate=fact.predicate, fact=sentence,
                   scope=owner, episode_ids=[episode.id], valid_at=decision.valid_at, invalid_at=decision.invalid_at,
                   created_at=out.plan.now, superseded_by=decision.superseded_by)
        out.plan.new_facts.append((new, vec))
        out.plan.closures.extend(decision.close)
        for c in decision.close:  # a pending fact closed in the same episode: keep the local copy honest
            for p in pending:
                if p.id == c.fact_id:
                    p.invalid_at, p.superseded_by = c.invalid_at, c.superseded_by
        pending.append(new)


def _sentence(sentence: str, name: str) -> str:
    return sentence.replace(USER, name)
