"""Turning one extraction into a write plan: resolve entities, embed, settle contradictions.

Reads the store (resolution candidates, facts on the same subject) but writes nothing; the facade
writes the plan in one transaction. Usage: ``Planner(store, embedder).plan(extraction, episode, owner, now)``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from graph.protocols import JsonEngine, TextEmbedder
from graph.resolution import Candidate, EntityIndex, Match, normalise
from graph.store import EntityTouch, GraphStore, WritePlan
from graph.temporal import NewFact, decide, endings
from graph.types import USER, Entity, Episode, ExtractedEntity, ExtractedFact, Extraction, Fact
from memory.ids import new_id
from memory.types import Scope

USER_NORM = "@user"


@dataclass
class PlanOutcome:
    """The plan plus what the result needs: born-closed facts point at the fact that outlives them."""

    plan: WritePlan
    entity_ids: dict[str, str] = field(default_factory=dict)  # extracted name → entity id
    touched: dict[str, Entity] = field(default_factory=dict)  # known entities as they will be stored


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
    """Builds WritePlans over an in-memory EntityIndex per scope (loaded from SQL on first use).

    The graph is the only writer of its tables, so the index stays true; after a failed write or a
    merge the caller drops it with ``forget()``. Usage: see module doc.
    """

    def __init__(self, store: GraphStore, embedder: TextEmbedder | None, llm: JsonEngine | None = None) -> None:
        self._store = store
        self._embedder = embedder
        self._llm = llm
        self._indexes: dict[Scope, EntityIndex] = {}

    def forget(self) -> None:
        """Drop the cached indexes; the next plan reloads them from SQL."""
        self._indexes.clear()

    def plan(self, extraction: Extraction, episode: Episode, owner: Scope, now: datetime) -> PlanOutcome:
        """Resolve, embed and decide everything one episode adds."""
        out = PlanOutcome(WritePlan(episode=episode, now=now))
        index = self._index(owner)
        user = self._user(index, owner, episode, out)
        for name in _self_names(extraction):  # "my name is Ann": Ann is the user, not a new person
            self._alias(index, user.id, name, episode, out)
            out.entity_ids[name] = user.id
        mentions = list({e.name: e for e in extraction.entities if e.name not in out.entity_ids}.values())
        # Cheap stages first: only the mentions they cannot place are embedded, and only new facts'
        # sentences (a restated fact has its vector), so a typical message costs one embed call or none.
        matches = {m.name: index.resolve(m, cheap_only=True) for m in mentions}
        left = [m for m in mentions if matches[m.name] is None]
        vectors = self._embed([m.name for m in left])
        name_vecs = {m.name: vectors[i] for i, m in enumerate(left)} if vectors is not None else {}
        for m in mentions:
            vec = name_vecs.get(m.name)
            match = matches[m.name] or (index.resolve(m, vec, self._llm) if m in left else None)
            self._place(m, match, vec, index, episode, owner, out)
        pending: list[Fact] = []
        for fact in extraction.facts:
            self._fact(fact, _sentence(fact.sentence, user.name), user, episode, owner, out, pending)
        fact_vecs = self._embed([_for_embedding(f.fact, user.name) for f, _ in out.plan.new_facts])
        if fact_vecs is not None:
            out.plan.new_facts = [(f, fact_vecs[i]) for i, (f, _) in enumerate(out.plan.new_facts)]
        return out

    def _index(self, owner: Scope) -> EntityIndex:
        if owner not in self._indexes:
            self._indexes[owner] = EntityIndex([Candidate(e, v) for e, v in self._store.entities_with_vectors(owner)])
        return self._indexes[owner]

    def _embed(self, texts: list[str]) -> np.ndarray | None:
        if self._embedder is None or not texts:
            return None
        return self._embedder.embed(texts)

    def _user(self, index: EntityIndex, owner: Scope, episode: Episode, out: PlanOutcome) -> Entity:
        found = index.resolve(ExtractedEntity(USER_NORM, "person"), cheap_only=True)
        cand = index.get(found.entity_id) if found is not None else None
        if cand is not None:
            user = cand.entity
            touch = EntityTouch(user.id, episode.reference_time)
            out.plan.touches.append(touch)
            out.touched[user.id] = _touched(user, touch)
        else:
            user = Entity(id=new_id(), name=user_name(owner), norm_name=USER_NORM, type="person",
                          scope=owner, attributes={"role": "self"}, created_at=out.plan.now,
                          last_seen_at=episode.reference_time)
            out.plan.new_entities.append((user, None))
            index.add(Candidate(user, None))
        out.entity_ids[USER] = user.id
        return user

    def _alias(self, index: EntityIndex, entity_id: str, alias: str, episode: Episode, out: PlanOutcome) -> None:
        cand = index.get(entity_id)
        assert cand is not None
        touch = EntityTouch(entity_id, episode.reference_time, [alias])
        out.plan.touches.append(touch)
        out.touched[entity_id] = _touched(cand.entity, touch)
        index.add(Candidate(out.touched[entity_id], cand.vector))

    def _place(self, mention: ExtractedEntity, match: Match | None, vec: np.ndarray | None, index: EntityIndex,
               episode: Episode, owner: Scope, out: PlanOutcome) -> None:
        attrs = {"role": mention.role} if mention.role else {}
        if match is not None:
            cand = index.get(match.entity_id)
            assert cand is not None
            known = cand.entity
            aliases = [mention.name] if normalise(mention.name) not in {known.norm_name, *map(normalise, known.aliases)} else []
            touch = EntityTouch(known.id, episode.reference_time, aliases, attrs, mention.type)
            out.plan.touches.append(touch)
            out.touched[known.id] = _touched(known, touch)
            index.add(Candidate(out.touched[known.id], cand.vector))
            out.entity_ids[mention.name] = known.id
        else:
            entity = Entity(id=new_id(), name=mention.name, norm_name=normalise(mention.name),
                            type=mention.type, scope=owner, attributes=attrs, created_at=out.plan.now,
                            last_seen_at=episode.reference_time)
            out.plan.new_entities.append((entity, vec))
            index.add(Candidate(entity, vec))
            out.entity_ids[mention.name] = entity.id
        out.plan.mentions.append(out.entity_ids[mention.name])

    def _fact(self, fact: ExtractedFact, sentence: str, user: Entity, episode: Episode, owner: Scope,
              out: PlanOutcome, pending: list[Fact]) -> None:
        subject_id, object_id = out.entity_ids.get(fact.subject), out.entity_ids.get(fact.object)
        if subject_id is None or object_id is None:
            return  # an extractor named an entity it did not list; nothing to attach the fact to
        if fact.predicate == "name" and subject_id == user.id:
            return  # already an alias of the user
        existing = _as_planned(self._store.facts_of(subject_id, fact.predicate), out.plan)
        existing += [p for p in pending if p.subject_id == subject_id and p.predicate == fact.predicate]
        valid_at = fact.valid_at or episode.reference_time
        if fact.negated:
            out.plan.closures.extend(endings(fact.predicate, object_id, valid_at, existing))
            return
        fact_id = new_id()
        decision = decide(NewFact(fact_id, subject_id, fact.predicate, object_id, valid_at, fact.invalid_at,
                                  fact.correction, out.entity_ids.get(fact.corrects or "")), existing)
        if decision.duplicate_of is not None:
            if not any(p.id == decision.duplicate_of for p in pending):
                out.plan.restated.append(decision.duplicate_of)
                if decision.starts is not None:
                    out.plan.starts[decision.duplicate_of] = (decision.starts, fact.valid_precision)
                    out.plan.closures.extend(decision.close)
            return
        new = Fact(id=fact_id, subject_id=subject_id, object_id=object_id, predicate=fact.predicate, fact=sentence,
                   scope=owner, episode_ids=[episode.id], valid_at=decision.valid_at, invalid_at=decision.invalid_at,
                   created_at=out.plan.now, superseded_by=decision.superseded_by,
                   valid_precision=fact.valid_precision if decision.valid_at == valid_at else None)
        out.plan.new_facts.append((new, None))  # embedded in one batch once all facts are decided
        out.plan.closures.extend(decision.close)
        for c in decision.close:  # a pending fact closed in the same episode: keep the local copy honest
            for p in pending:
                if p.id == c.fact_id:
                    p.invalid_at, p.superseded_by = c.invalid_at, c.superseded_by
        pending.append(new)


def _self_names(extraction: Extraction) -> list[str]:
    return [f.object for f in extraction.facts if f.predicate == "name" and f.subject == USER and not f.negated]


def _as_planned(facts: list[Fact], plan: WritePlan) -> list[Fact]:
    """Stored facts with the closures this plan already decided applied (two moves in one message)."""
    closing = {c.fact_id: c for c in plan.closures}
    for f in facts:
        if f.id in closing:
            f.invalid_at = closing[f.id].invalid_at or plan.now
            f.superseded_by = closing[f.id].superseded_by or f.superseded_by
    return facts


def _touched(entity: Entity, touch: EntityTouch) -> Entity:
    """The entity as the store will hold it after ``touch`` (mirrors GraphStore's update)."""
    aliases = [*entity.aliases, *(a for a in touch.aliases if a not in entity.aliases and a != entity.name)]
    generic = ("entity", "thing")
    type_ = touch.type if touch.type and entity.type in generic and touch.type not in generic else entity.type
    seen = max(filter(None, [entity.last_seen_at, touch.seen_at]))
    return replace(entity, aliases=aliases, attributes={**touch.attributes, **entity.attributes}, type=type_,
                   last_seen_at=seen)


def _for_embedding(sentence: str, user: str) -> str:
    """The sentence as embedded: "User" for the user, whose id ("u1", a UUID) means nothing to a
    text model; "where does the user work?" then finds "User works at Airbus" (0.49 vs 0.17)."""
    return re.sub(rf"(?<!\w){re.escape(user)}(?!\w)", "User", sentence)


def _sentence(sentence: str, name: str) -> str:
    return sentence.replace(USER, name)
