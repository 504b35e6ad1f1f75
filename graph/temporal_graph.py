"""``TemporalGraph``: the graph's one public face — ingest episodes, ask for facts, walk the graph.

Usage::

    graph = TemporalGraph(sql_engine, embedder, RuleExtractor(), clock)
    result = graph.ingest("I moved to Paris last June.", note_id="n1", scope=Scope(user_id="u1"),
                          reference_time="2026-01-14T10:00:00Z")
    graph.facts(entity="u1", user_id="u1")          # current facts, rendered with validity
    result.superseded_note_ids                      # notes whose facts this episode superseded
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from graph.ingest import PlanOutcome, Planner, owner_scope
from graph.protocols import Extractor, JsonEngine, TextEmbedder
from graph.queries import GraphQueries
from graph.store import GraphStore, SqlEngine, WritePlan
from graph.types import Episode, Extraction, Fact, IngestResult, Merge, Supersession
from graph.view import GraphView
from memory.clock import Clock, system_clock
from memory.errors import EmptyContent, InvalidInput
from memory.ids import new_id
from memory.timeutil import TimeLike, to_utc
from memory.types import Scope

log = logging.getLogger(__name__)


class TemporalGraph(GraphQueries):
    """Bi-temporal knowledge graph on SQL with a networkx view. Thread-safe. Usage: see module doc."""

    def __init__(self, engine: SqlEngine, embedder: TextEmbedder | None, extractor: Extractor,
                 clock: Clock | None = None, resolver_llm: JsonEngine | None = None,
                 follow_s: float | None = None) -> None:
        """``follow_s``: another process writes this graph (a job worker process): before a walk
        of the view, at most every ``follow_s`` seconds, compare the tables' signature and rebuild
        the view from SQL when it moved. None: this process is the only writer."""
        self.store = GraphStore(engine)
        self.clock = clock or system_clock
        self.extractor = extractor
        self.embedder = embedder
        self._planner = Planner(self.store, embedder, resolver_llm)
        self._lock = threading.RLock()
        self.counters = {"episodes": 0, "extraction_failures": 0, "facts": 0, "closed": 0}
        self._follow_s = follow_s
        self._checked_at = time.monotonic()
        self._signature = self.store.signature() if follow_s is not None else None
        self._view = self.rebuild_view()

    @property
    def view(self) -> GraphView:
        """The networkx view, first brought up to date with other processes' writes when following."""
        if self._follow_s is not None and time.monotonic() - self._checked_at >= self._follow_s:
            self.sync_view()
        return self._view

    def sync_view(self) -> bool:
        """Rebuild the view if the graph tables changed since the last look; True if it did."""
        with self._lock:
            self._checked_at = time.monotonic()
            signature = self.store.signature()
            if signature == self._signature:
                return False
            # Signature first: a write landing during the rebuild moves it again and is caught next time.
            self._signature, self._view = signature, self.rebuild_view()
            return True

    def rebuild_view(self) -> GraphView:
        """The networkx view rebuilt from SQL (what a restart does)."""
        return GraphView.rebuild(self.store.entities(None), self.store.facts(None))

    # ---- writes -------------------------------------------------------------------------

    def ingest(self, episode_text: str, note_id: str | None, scope: Scope, reference_time: TimeLike) -> IngestResult:
        """Extract, resolve, settle contradictions and store one episode; the episode is kept even
        when extraction fails (the failure is logged, counted and recorded on the episode)."""
        if not isinstance(scope, Scope):
            raise InvalidInput("scope must be a memory.types.Scope")
        if not isinstance(episode_text, str) or not episode_text.strip():
            raise EmptyContent("episode text is empty")
        ref = to_utc(reference_time)
        extraction = self._extract(episode_text, ref)
        with self._lock:
            now = self.clock()
            owner = owner_scope(scope)
            episode = Episode(id=new_id(), note_id=note_id, content=episode_text, scope=scope,
                              reference_time=ref, created_at=now, extractor=self.extractor.name, error=extraction.error)
            try:
                outcome = self._planner.plan(extraction, episode, owner, now)
                closed = self.store.write(outcome.plan)
            except Exception:
                self._planner.forget()  # the cached index may hold entities that were never written
                raise
            self._update_view(outcome, closed)
            self._count(outcome.plan, closed)
            result = IngestResult(episode=episode, entities=[e for e, _ in outcome.plan.new_entities],
                                  facts=[f for f, _ in outcome.plan.new_facts], closed=closed)
            result.superseded = self._supersessions(result)
            return result

    def retract_note(self, note_id: str, scope: Scope) -> list[Fact]:
        """Withdraw everything a note's episodes said (see ``GraphStore.retract``): the note was
        deleted or its content replaced. Returns the facts that changed. Usage:
        ``graph.retract_note(note.id, note.scope)``."""
        if not isinstance(scope, Scope):
            raise InvalidInput("scope must be a memory.types.Scope")
        with self._lock:
            episodes = self.store.episodes_of_note(note_id)
            if not episodes:
                return []
            changed = self.store.retract(episodes, owner_scope(scope), self.clock())
            for fact in changed:
                self.view.upsert_fact(fact)
            return changed

    def merge(self, a: str, b: str, *, user_id: str | None = None, agent_id: str | None = None,
              session_id: str | None = None, reason: str = "manual") -> Merge:
        """Fold entity ``b`` into ``a`` (names or ids); reversible with ``unmerge(merge.id)``."""
        scope = owner_scope(Scope(user_id, agent_id, session_id))
        with self._lock:
            kept, merged = self._entity(a, scope), self._entity(b, scope)
            merge = self.store.merge(kept.id, merged.id, reason, self.clock())
            self._planner.forget()
            self._refresh([kept.id, merged.id])
            return merge

    def unmerge(self, merge_id: str) -> Merge:
        """Undo a merge exactly (facts, mentions and aliases go back)."""
        with self._lock:
            merge = self.store.unmerge(merge_id, self.clock())
            self._planner.forget()
            self._refresh([merge.kept_id, merge.merged_id])
            return merge

    # ---- helpers ------------------------------------------------------------------------

    def _extract(self, text: str, ref: datetime) -> Extraction:
        try:
            extraction = self.extractor.extract(text, ref)
        except Exception as exc:  # an extractor bug must not lose the episode; it is recorded below
            log.exception("extractor %s raised", getattr(self.extractor, "name", "?"))
            extraction = Extraction(error=f"{exc.__class__.__name__}: {exc}")
        if extraction.error:
            log.warning("graph extraction failed (%s): %s", self.extractor.name, extraction.error)
        return extraction

    def _update_view(self, outcome: PlanOutcome, closed: list[Fact]) -> None:
        plan = outcome.plan
        for entity, _ in plan.new_entities:
            self.view.upsert_entity(entity)
        for entity in outcome.touched.values():
            self.view.upsert_entity(entity)
        for fact, _ in plan.new_facts:
            self.view.upsert_fact(fact)
        for fact in closed:
            self.view.upsert_fact(fact)
        for fact in self.store.facts_by_id(list(plan.starts)).values() if plan.starts else ():
            self.view.upsert_fact(fact)

    def _refresh(self, entity_ids: list[str]) -> None:
        """Re-read entities and their facts after a merge or unmerge."""
        for entity_id in entity_ids:
            self.view.upsert_entity(self.store.entity(entity_id))
        for entity_id in entity_ids:
            for fact in self.store.facts(None, entity_id=entity_id):
                self.view.upsert_fact(fact)

    def _count(self, plan: WritePlan, closed: list[Fact]) -> None:
        self.counters["episodes"] += 1
        self.counters["extraction_failures"] += int(plan.episode.error is not None)
        self.counters["facts"] += len(plan.new_facts)
        self.counters["closed"] += len(closed)

    def _supersessions(self, result: IngestResult) -> list[Supersession]:
        pairs = [(c.id, c.superseded_by) for c in result.closed if c.superseded_by]
        pairs += [(f.id, f.superseded_by) for f in result.facts if f.superseded_by]
        if not pairs:
            return []
        facts = {f.id: f for f in result.closed + result.facts}
        facts.update(self.store.facts_by_id([new for _, new in pairs if new not in facts]))
        episode_ids = {e for f in facts.values() for e in f.episode_ids}
        notes = self.store.note_ids(list(episode_ids))
        out = []
        for old, new in pairs:
            old_notes = tuple(dict.fromkeys(notes[e] for e in facts[old].episode_ids if e in notes))
            new_notes = tuple(dict.fromkeys(notes[e] for e in facts[new].episode_ids if e in notes)) if new in facts else ()
            out.append(Supersession(old, new, old_notes, new_notes))
        return out

