"""``Engram``: the embedded memory — notes in SQL, hybrid search, forgetting curve, links.

Usage::

    from api import Engram
    mem = Engram(path="engram.db")
    mem.add("I moved to Lisbon in May", user_id="ann")
    hits = mem.search("where does ann live?", user_id="ann")
    mem.wait_for_jobs()                           # graph extraction runs from the durable job queue
    mem.graph.facts(entity="ann", user_id="ann")  # current facts, e.g. "ann lives in Lisbon (since ...)"
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from api.change_feed import ChangeFollower
from api.config import EngramConfig
from api.enrich_jobs import ENRICH, EnrichJobs, enrich_jobs_for
from api.graph_jobs import GraphJobs, graph_jobs_for, retract_job_for
from api.graph_search import FactHit, GraphRanking, place_facts, rank_graph
from api.heap import heap_frozen, refreeze
from api.index_sync import apply_changes, open_index, persist
from api.inputs import NoteSpec, specs_from_add, specs_from_records
from api.native_scan import load_link_scan
from api.shared_embedder import LockedEmbedder
from api.stage_times import StageTimes
from api.worker import JobRunner, Workers
from graph.extract_llm import LLMExtractor
from graph.extract_rules import RuleExtractor
from graph.protocols import Extractor
from graph.ingest import owner_scope
from graph.queries import user_perspective
from graph.temporal_graph import TemporalGraph
from inference.engine import Engine
from memory.clock import Clock, system_clock
from memory.construction import Enricher, build_draft
from memory.database import open_engine, sqlite_url
from memory.errors import Conflict, IdempotencyKeyTaken, InvalidInput
from memory.filters import compile_filter
from memory.forgetting import initial_strength, retention
from memory.jobs import QUEUED, RUNNING, Job, JobSpec, JobStore
from memory.linking import Linked, LinkPlan, links_for
from memory.notify import PollSignal, change_signal
from memory.stopwords import ENGLISH
from memory.store import NoteStore
from memory.timeutil import TimeLike, days_between, to_utc
from memory.idempotency import idempotency_for
from memory.ids import new_id
from memory.types import HistoryEntry, Idempotency, IndexedNote, Link, Note, Scope
from memory.validation import clean_content, clean_importance, clean_metadata, clean_note_id
from retrieval.embedder import Embedder, MiniLMEmbedder
from retrieval.hybrid import HybridIndex
from retrieval.terms import Tokenizer
from retrieval.ranking import Hit, rank, to_hits
from retrieval.speaker import asked_speaker

log = logging.getLogger("engram")


# Notes per transaction in add_many (and per embedding batch of its pipeline). A larger batch
# dirties fewer pages a note: the random ones (a link's entry in the target index, an evolved
# neighbour's row) more often share a page within one commit, and linking scans a scope's rows
# once for more new notes. Adding 5,120 notes at 100k cost 0.469 ms of CPU a note in batches of
# 512 against 0.508 in batches of 256 (8 runs each; docs/benchmarks.md, issue 2, twenty-fourth look).
ADD_BATCH = 512


class Engram:
    """The embedded memory. Thread-safe; one instance per database in a process.

    Several processes can share one PostgreSQL database (``database_url``; ``db_schema`` gives each
    tenant its own schema): with ``follow=True`` each instance's search index follows the others'
    writes through the change feed (see api/change_feed.py), within about ``follow_interval``
    seconds at worst and one notification round trip usually.
    """

    def __init__(
        self,
        path: str | Path = "engram.db",
        *,
        database_url: str | None = None,
        db_schema: str | None = None,
        embedder: Embedder | None = None,
        config: EngramConfig | None = None,
        clock: Clock | None = None,
        index_dir: str | Path | None = None,
        enricher: Enricher | None = None,
        llm: Engine | None = None,
        workers: int = 1,
        follow: bool = False,
        follow_interval: float | None = None,
        graph_follow_s: float | None = None,
    ) -> None:
        """``llm``: an ``inference`` engine; with it, graph extraction uses the LLM extractor and
        every note gets an ``enrich`` job (LLM keywords, tags, context, neighbour evolution); without
        it, the deterministic path is all there is. ``workers``: job threads; 0 runs jobs only
        through ``run_jobs``/``wait_for_jobs``. ``graph_follow_s``: another process (an ``engram
        worker``) writes the graph: graph walks pick up its writes within that many seconds."""
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise InvalidInput("workers must be an integer >= 0")
        self.config = config or EngramConfig()
        self.clock = clock or system_clock
        self.llm = llm
        self._enricher = enricher
        self._embedder = embedder
        self._load_lock = threading.Lock()
        self._shared = LockedEmbedder(lambda: self.embedder)
        self.add_times = StageTimes()
        self._lock = threading.RLock()  # the derived index
        self._write_lock = threading.RLock()  # adds, from indexing to commit
        url = database_url or sqlite_url(path)
        engine = open_engine(url, durable=self.config.durable, schema=db_schema)
        # Tags this instance's change rows: its follower skips what it indexed while writing.
        self.store = NoteStore(engine, self.config.memory.forgetting, self.config.memory.jobs, origin=uuid.uuid4().hex)
        self.job_store = JobStore(engine, self.config.memory.jobs)
        self._index_dir = _index_folder(path, database_url, index_dir, self.config.persist_index)
        self.index, self.index_status = open_index(self._new_index, self.store, self._index_dir, self._model_id())
        graph_llm = llm if self.config.graph_llm else None
        self.graph = TemporalGraph(engine, self._shared, self._extractor(graph_llm), self.clock, resolver_llm=graph_llm,
                                   follow_s=graph_follow_s)
        handlers = GraphJobs(self.store, self.graph, self.clock).handlers()
        self.enrich_jobs = None if llm is None else EnrichJobs(
            self.store, llm, self._neighbours_of, self.config.memory.enrich, self.clock)
        if self.enrich_jobs is not None:
            handlers[ENRICH] = self.enrich_jobs.handle
        self._note_listeners: list[Callable[[str, Note], None]] = []
        self._runner = JobRunner(self.job_store, handlers, self.clock)
        self._workers = Workers(self._runner, workers, self.config.job_poll_s, self.config.memory.jobs.claim_batch)
        self._workers.start()
        self.follower: ChangeFollower | None = None
        if follow:
            signal = change_signal(engine)
            interval = follow_interval if follow_interval is not None else _default_interval(signal)
            self.follower = ChangeFollower(self.apply_changes, signal, interval=interval)
            self.follower.start()

    def on_note_change(self, listener: Callable[[str, Note], None]) -> None:
        """Call ``listener(event, note)`` after a note changes what it says or leaves search:
        ("update", the note before the edit), ("delete", the note), ("archive", the note). Derived
        caches keyed by a note's text (the chat's chunk KV) drop it there. A listener's error is
        logged, never raised: the write is already committed."""
        self._note_listeners.append(listener)

    def _notify(self, event: str, notes: Iterable[Note]) -> None:
        for note in notes:
            for listener in self._note_listeners:
                try:
                    listener(event, note)
                except Exception:  # noqa: BLE001 - a cache hook must not fail a committed write
                    log.exception("note listener failed on %s of %s", event, note.id)

    # ---- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following and the job workers (the jobs in hand finish; queued ones stay queued in
        SQL), save the derived index next to the database and release the connection pool."""
        if self.follower is not None:
            self.follower.stop()  # outside the lock: the follower may be waiting for it
        self._workers.stop()
        with self._write_lock, self._lock:  # this order everywhere: an add takes both in it
            self.save_index()
            self.store.close()

    def save_index(self) -> None:
        if self._index_dir is not None:
            # The write lock too: a saved index never holds the rows of an add not yet committed.
            with self._write_lock, self._lock:
                if self.follower is not None:
                    self.apply_changes()
                persist(self.index, self.store, self._index_dir, self._model_id(), following=self.follower is not None)

    def apply_changes(self) -> list[str]:
        """Bring the index up to date with other writers' changes now; returns the note ids applied.
        The follower thread calls this; so can a caller that needs read-your-others'-writes."""
        with self._lock:
            # Under the lock for the whole read-and-apply: a note read here must not land in the
            # index after this instance deleted or changed it in between.
            return apply_changes(self.index, self.store, self.store.origin)

    def __enter__(self) -> Engram:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use, so commands that never embed stay fast. Once: the caller and a job
        worker may both ask first (two concurrent model loads race in transformers' lazy imports)."""
        if self._embedder is None:
            with self._load_lock:
                if self._embedder is None:
                    self._embedder = MiniLMEmbedder(batch_size=self.config.embed_batch)
        return self._embedder

    # ---- writes ---------------------------------------------------------------------------

    def add(
        self,
        data: str | Sequence[Mapping[str, Any]],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        timestamp: TimeLike | None = None,
        importance: float | None = None,
        actor: str = "user",
        idempotency_key: str | None = None,
    ) -> list[Note]:
        """Store a note (a string) or one note per chat turn (``[{role, content}, ...]``).

        ``idempotency_key``: a retry of the same request under the same key returns the notes the
        first try stored (without their links) and stores nothing; the key with a different
        request raises Conflict."""
        scope = Scope(user_id, agent_id, session_id)
        idem = None
        if idempotency_key is not None:
            idem = idempotency_for(idempotency_key, data, scope, metadata, timestamp, importance)
            replayed = self._replay(idem)
            if replayed is not None:
                return replayed
        specs = specs_from_add(data, scope, metadata, timestamp, importance, self.clock(), self.config.memory)
        try:
            return self._create(specs, actor, idem)
        except IdempotencyKeyTaken:
            # A concurrent add under the same key committed first (only it can have stored the key).
            replayed = self._replay(idem) if idem is not None else None
            if replayed is None:
                raise
            return replayed

    def _replay(self, idem: Idempotency) -> list[Note] | None:
        """The notes stored under ``idem``'s key (in their order; deleted ones left out), None when
        the key is new, Conflict when it was used for another request."""
        found = self.store.idempotent(idem.key)
        if found is None:
            return None
        digest, note_ids = found
        if digest != idem.request_hash:
            raise Conflict(f"idempotency key {idem.key!r} was already used for a different request")
        notes = self.store.get_many(note_ids)
        return [notes[nid] for nid in note_ids if nid in notes]

    def add_many(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = ADD_BATCH,
        actor: str = "user",
        progress: Callable[[int], None] | None = None,
    ) -> list[Note]:
        """Store many notes, embedded in batches. Each record: {content, role?, user_id?, agent_id?,
        session_id?, metadata?, timestamp?, importance?}. Every record is validated before the first write."""
        specs = specs_from_records(records, self.clock(), self.config.memory)
        chunks = [specs[start : start + batch_size] for start in range(0, len(specs), batch_size)]
        if chunks:
            self._check_batch(chunks[0])  # the largest: fail before anything is embedded
        notes: list[Note] = []
        # A pipeline: the next batch is embedded (torch releases the GIL) and, on a thread of its
        # own, drafted, while this one is linked, indexed and committed (Python, SQL, the fsync),
        # so neither the cores nor the disk wait for the other. Drafting beside the embedding,
        # not before it: the embedder's workers would idle while the notes are drafted.
        # Batches still commit one by one, in order.
        # The heap stays frozen meanwhile (api/heap.py): full collections would otherwise revisit
        # the models' and libraries' objects every few thousand notes, stopping every thread.
        # A large call builds two secondary indexes once at its end instead of note by note
        # (memory/deferred_indexes.py); the build is part of the call.
        with heap_frozen(), self.store.bulk_ingest(len(specs), self.config.memory.bulk_index_min_notes), \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="engram-embed") as embedder, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="engram-draft") as drafter:

            def ahead(chunk: list[NoteSpec]) -> tuple[Future[list[Note]], Future[np.ndarray]]:
                return drafter.submit(self._draft, chunk), embedder.submit(self._embed, [s.content for s in chunk])

            upcoming = ahead(chunks[0]) if chunks else None
            for i, chunk in enumerate(chunks):
                drafted, vectors = (f.result() for f in upcoming)  # type: ignore[union-attr]
                upcoming = ahead(chunks[i + 1]) if i + 1 < len(chunks) else None
                try:
                    notes.extend(self._store_new(drafted, vectors, actor))
                except BaseException:
                    for pending in upcoming or ():
                        pending.cancel()
                    raise
                refreeze()  # the batch's leftovers: full passes would walk them again and again
                if progress:
                    progress(len(chunk))
        return notes

    def update(
        self,
        note_id: str,
        *,
        content: str | None = None,
        metadata: dict[str, Any] | None = None,
        importance: float | None = None,
        timestamp: TimeLike | None = None,
        actor: str = "user",
    ) -> Note:
        """Change a note's content, metadata, importance or event time; audited in history."""
        note_id = clean_note_id(note_id)
        changes: dict[str, Any] = {}
        if metadata is not None:
            changes["meta"] = clean_metadata(metadata, self.config.memory)
        if importance is not None:
            changes["importance"] = clean_importance(importance, self.config.memory)
        if timestamp is not None:
            changes["event_time"] = to_utc(timestamp)
        vector = None
        if content is not None:
            content = clean_content(content, self.config.memory)
            vector = self._shared.embed([content])
        if not changes and content is None:
            raise InvalidInput("nothing to update: give content, metadata, importance or timestamp")
        with self._lock:
            current = self.store.get(note_id)
            if content is not None:
                changes.update(self._redraft(current, content, changes), embedding=vector[0].tobytes())
            # New words or a new reference time change what the note says to the graph.
            regraph = content is not None or "event_time" in changes
            jobs = self._jobs_for(replace(current, metadata=changes.get("meta", current.metadata))) if regraph else []
            note = self.store.update(note_id, changes, self.clock(), actor, jobs=jobs)
            if content is not None:
                self.index.add([_indexed(note)], vector)
        self._workers.wake()
        self._notify("update", [current])
        return note

    def delete(self, note_id: str, *, actor: str = "user") -> None:
        """Delete a note and its links; its history keeps the old content. Its facts are withdrawn
        from the graph by a ``retract`` job queued in the same transaction."""
        note_id = clean_note_id(note_id)
        with self._lock:
            current = self.store.get(note_id)
            self.store.delete(note_id, self.clock(), actor, jobs=[retract_job_for(current)])
            self.index.remove(note_id)
        self._workers.wake()
        self._notify("delete", [current])

    def consolidate(
        self, *, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None,
        now: TimeLike | None = None, threshold: float | None = None,
    ) -> list[str]:
        """Archive notes whose retention fell below ``threshold``; returns their ids. Deletes nothing."""
        scope = None if (user_id, agent_id, session_id) == (None, None, None) else Scope(user_id, agent_id, session_id)
        when = to_utc(now) if now is not None else self.clock()
        limit = self.config.memory.forgetting.archive_threshold if threshold is None else threshold
        if not 0.0 <= limit <= 1.0:
            raise InvalidInput("threshold must be in [0, 1]")
        with self._lock:
            ids = self.store.set_archived(self.store.faded(scope, when, limit), True, when, "consolidate")
            for note_id in ids:
                self.index.set_archived(note_id, True)
        if self._note_listeners and ids:
            self._notify("archive", self.store.get_many(ids).values())
        return ids

    def restore(self, note_ids: str | Sequence[str], *, actor: str = "user") -> list[str]:
        """Bring archived notes back into default search; returns the ids that changed."""
        ids = [clean_note_id(i) for i in ([note_ids] if isinstance(note_ids, str) else note_ids)]
        with self._lock:
            for note_id in ids:
                self.store.get(note_id)  # NotFound for an unknown id, before any change
            changed = self.store.set_archived(ids, False, self.clock(), actor)
            for note_id in changed:
                self.index.set_archived(note_id, False)
        return changed

    def import_notes(self, notes: Sequence[Note], links: Sequence[Link] = (), *, actor: str = "import") -> list[Note]:
        """Store notes exactly as given (ids, times, strength, links), e.g. from an export; they are
        re-embedded. Conflict when an id exists already, and nothing is written then."""
        if len(notes) > self.config.max_batch:
            raise InvalidInput(f"batch of {len(notes)} notes is over the limit of {self.config.max_batch}")
        notes = list(notes)
        if not notes:
            return []
        vectors = self._shared.embed([n.content for n in notes])
        with self._lock:
            taken = self.store.get_many([n.id for n in notes])
            if taken:
                raise Conflict(f"{len(taken)} note ids exist already, e.g. {sorted(taken)[0]!r}")
            self.index.add([_indexed(n) for n in notes], vectors)
            try:
                jobs = [job for n in notes for job in self._jobs_for(n)]  # the graph learns them too
                self.store.insert(notes, [v.tobytes() for v in vectors], self._model_id(), actor, links, None, jobs)
            except BaseException:
                for note in notes:
                    self.index.remove(note.id)
                raise
        return notes

    # ---- reads ----------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        now: TimeLike | None = None,
        as_of: TimeLike | None = None,
        include_archived: bool = False,
        include_facts: bool = True,
    ) -> list[Hit | FactHit]:
        """Hybrid search in a scope: notes found by dense + BM25 + the knowledge graph (the notes
        behind matching facts) and, with ``include_facts``, the facts themselves, in one ranked list
        (``kind`` is "note" or "fact"). Facts are current ones, or those valid at ``as_of`` (world
        time), when notes count only if what they tell happened by then. Every note returned is
        reinforced (a recall) in the same transaction as its access log."""
        scope = Scope(user_id, agent_id, session_id)
        query = self._clean_query(query, top_k)
        when = to_utc(now) if now is not None else self.clock()
        world = to_utc(as_of) if as_of is not None else None
        predicate = compile_filter(_until(filters, world)) if filters is not None or world is not None else None
        # Facts are matched from the user's perspective ("where do I live" → "... User live"): a
        # second sentence in the same embedding batch, only when the scope has facts at all.
        use_graph = self.config.graph_search.enabled and self.graph.store.has_facts(owner_scope(scope))
        perspective = user_perspective(query) if use_graph else query
        vectors = self._shared.embed_query([query] if perspective == query else [query, perspective])
        graph = self._graph_ranking(query, vectors[-1], scope, world, top_k) if use_graph else None
        with self._lock:
            hits, top_raw = self._ranked(query, vectors[0], scope, predicate, top_k, when, include_archived,
                                         graph.note_ids if graph else [])
        found: list[Hit | FactHit] = list(hits)
        if include_facts and graph is not None:
            found = place_facts(hits, graph.facts, top_raw, top_k, self.config.ranking, self.config.graph_search)
        # Outside the index lock: reinforcing is a SQL transaction of its own (a note deleted in
        # between is skipped), and holding the lock through its commit made every other request
        # of this process wait for that commit too.
        self._reinforce([h for h in found if isinstance(h, Hit)], when, query)
        return found

    def get(self, note_id: str, *, now: TimeLike | None = None) -> Note:
        """One note with its links; counts as a recall."""
        note_id = clean_note_id(note_id)
        when = to_utc(now) if now is not None else self.clock()
        # SQL only (the index is not read), so no index lock: a get never queues behind a write.
        self.store.recall([note_id], when, "get", None)
        return self.store.get(note_id)

    def get_all(
        self, *, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None,
        include_archived: bool = False, limit: int = 100, offset: int = 0,
    ) -> list[Note]:
        """A scope's notes, oldest event first (not a recall)."""
        scope = Scope(user_id, agent_id, session_id)
        if not (1 <= limit <= self.config.max_top_k) or offset < 0:
            raise InvalidInput(f"limit must be in [1, {self.config.max_top_k}] and offset >= 0")
        return self.store.list_notes(scope, include_archived, limit, offset)

    def history(self, note_id: str) -> list[HistoryEntry]:
        """The audit trail of a note (add, update, evolve, archive, restore, delete)."""
        return self.store.history(clean_note_id(note_id))

    def links(self, note_id: str) -> list[Link]:
        return self.store.links(clean_note_id(note_id))

    def retention(self, note: Note, now: TimeLike | None = None) -> float:
        """R = exp(-Δt/S) of ``note`` at ``now``."""
        when = to_utc(now) if now is not None else self.clock()
        return retention(days_between(note.last_touched, when), note.strength)

    def stats(self) -> dict[str, Any]:
        return {**self.store.stats(), "indexed": len(self.index), "index_rows": self.index.catalog.num_rows,
                "vector_index": self.index.vectors.kind, "index_status": self.index_status, "jobs": self.job_store.counts(),
                "graph": dict(self.graph.counters), "add_stages": self.add_times.snapshot()}

    # ---- jobs -----------------------------------------------------------------------------

    def jobs(self, state: str | None = None, limit: int = 100) -> list[Job]:
        """Enrichment jobs, newest first (``state``: queued, running, done or failed); a failed
        job keeps its ``last_error``."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= self.config.max_top_k:
            raise InvalidInput(f"limit must be an integer in [1, {self.config.max_top_k}]")
        return self.job_store.list(state, limit)

    def run_jobs(self, max_jobs: int | None = None) -> int:
        """Run due jobs in the calling thread until none is due (or ``max_jobs`` ran); returns how many ran."""
        batch = self.config.memory.jobs.claim_batch
        ran = 0
        while max_jobs is None or ran < max_jobs:
            done = self._runner.run_batch(batch if max_jobs is None else min(batch, max_jobs - ran))
            if done == 0:
                break
            ran += done
        return ran

    def wait_for_jobs(self, timeout: float = 60.0) -> bool:
        """Block until no job is queued or running; False if some still are after ``timeout``
        seconds (e.g. one waiting out its backoff). With ``workers=0`` the jobs run in this thread."""
        deadline = time.monotonic() + timeout
        while True:
            if self._workers.alive == 0:
                self.run_jobs()
            counts = self.job_store.counts()
            if counts[QUEUED] + counts[RUNNING] == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            self._workers.wake()
            time.sleep(min(0.02, max(deadline - time.monotonic(), 0.0)))

    def retry_job(self, job_id: int) -> Job:
        """Queue a failed job again with fresh attempts."""
        job = self.job_store.retry(job_id, self.clock())
        self._workers.wake()
        return job

    # ---- internals ------------------------------------------------------------------------

    def _new_index(self) -> HybridIndex:
        dim = self._embedder.dim if self._embedder is not None else MiniLMEmbedder.dim
        scan = load_link_scan() if self.config.vectors.link_codes else None
        return HybridIndex(dim, self.config.vectors, self.config.bm25, Tokenizer(stopwords=ENGLISH), scan)

    def _model_id(self) -> str:
        return self._embedder.model_id if self._embedder is not None else MiniLMEmbedder.model_id

    def _clean_query(self, query: Any, top_k: Any) -> str:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("query must be a non-empty string")
        if len(query) > self.config.max_query_chars:
            raise InvalidInput(f"query is over {self.config.max_query_chars} characters")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= self.config.max_top_k:
            raise InvalidInput(f"top_k must be an integer in [1, {self.config.max_top_k}]")
        return query

    def _create(self, specs: list[NoteSpec], actor: str, idem: Idempotency | None = None) -> list[Note]:
        return self._store_new(*self._prepare(specs), actor, idem)

    def _prepare(self, specs: list[NoteSpec]) -> tuple[list[Note], np.ndarray]:
        """New notes drafted and embedded, not stored yet."""
        return self._draft(specs), self._embed([s.content for s in specs])

    def _check_batch(self, specs: list[NoteSpec]) -> None:
        if len(specs) > self.config.max_batch:
            raise InvalidInput(f"batch of {len(specs)} notes is over the limit of {self.config.max_batch}")

    def _draft(self, specs: list[NoteSpec]) -> list[Note]:
        self._check_batch(specs)
        t = self.add_times.start()
        now = self.clock()
        notes = [self._new_note(spec, now) for spec in specs]
        self.add_times.lap("draft", t)
        return notes

    def _embed(self, contents: list[str]) -> np.ndarray:
        t = self.add_times.start()
        vectors = self._shared.embed(contents)
        self.add_times.lap("embed", t)  # waiting for the shared model included
        return vectors

    def _store_new(self, notes: list[Note], vectors: np.ndarray, actor: str,
                   idem: Idempotency | None = None) -> list[Note]:
        """Link, index and commit prepared notes (one transaction)."""
        now = notes[0].created_at if notes else self.clock()
        # Adds take turns (the write lock) from indexing to commit, so each one links against
        # everything added before it. The index lock is held only while the index is changed or
        # read, not through the commit's fsync: a search meanwhile may see the new rows, finds no
        # stored state for them yet and leaves them out (``rank``), instead of waiting.
        t = self.add_times.start()
        with self._write_lock:
            t = self.add_times.lap("write_lock_wait", t)
            with self._lock:
                # The index goes first so that notes of one batch can link to each other; if the
                # SQL transaction fails, the derived rows are dropped again.
                rows = self.index.add([_indexed(n) for n in notes], vectors)
            t = self.add_times.lap("index", t)
            try:
                with self._lock:
                    plan = self._plan_links(notes, vectors, rows, now)
                jobs = [job for n in notes for job in self._jobs_for(n)]
                t = self.add_times.lap("links", t)
                linked = self.store.insert(notes, [v.tobytes() for v in vectors], self._model_id(), actor, (), plan,
                                           jobs, idem)
                _as_stored(notes, linked)
                self.add_times.lap("commit", t)  # the SQL transaction, its fsync and any wait for the file's lock
                self.add_times.count()
            except BaseException:
                with self._lock:
                    for note in notes:
                        self.index.remove(note.id)
                raise
        self._workers.wake()
        return notes

    def _jobs_for(self, note: Note) -> list[JobSpec]:
        return graph_jobs_for(note) + (enrich_jobs_for(note) if self.llm is not None else [])

    def _neighbours_of(self, note: Note, k: int) -> list[tuple[Note, float]]:
        """The ``k`` notes nearest to ``note`` in its linking scope (itself excluded), by cosine."""
        vec = self._shared.embed([note.content])[0]
        with self._lock:
            allowed = self.index.rows(_link_scope(note.scope), include_archived=False)
            found = [(nid, sim) for nid, sim in self.index.dense_among(vec, k + 1, allowed) if nid != note.id][:k]
        notes = self.store.get_many([nid for nid, _ in found])
        return [(notes[nid], sim) for nid, sim in found if nid in notes]

    @staticmethod
    def _extractor(llm: Any | None) -> Extractor:
        return LLMExtractor(llm) if llm is not None else RuleExtractor()

    def _new_note(self, spec: NoteSpec, now: datetime) -> Note:
        draft = build_draft(spec.content, event_time=spec.event_time, metadata=spec.metadata)
        if self._enricher is not None:
            draft = replace(self._enricher.enrich(draft, spec.metadata), content=spec.content)
        strength = initial_strength(spec.importance, self.config.memory.forgetting)
        return Note(new_id(), spec.scope, spec.content, draft.keywords, draft.tags, draft.context,
                    spec.metadata, now, spec.event_time, None, 0, strength, spec.importance)

    def _redraft(self, current: Note, content: str, changes: dict[str, Any]) -> dict[str, Any]:
        meta = changes.get("meta", current.metadata)
        draft = build_draft(content, event_time=changes.get("event_time", current.event_time), metadata=meta)
        return {"content": content, "keywords": draft.keywords, "tags": draft.tags, "context": draft.context}

    def _plan_links(self, notes: list[Note], vectors: np.ndarray, rows: list[int], now: datetime) -> LinkPlan:
        """Link each new note to its nearest earlier notes in its scope (``note.links``) and name
        the close neighbours that may evolve; the insert's transaction settles both (``LinkPlan``).
        Every decision is keyed by note id."""
        cfg = self.config.memory.linking
        neighbours = self._earlier_neighbours(notes, vectors, rows, cfg.neighbours)
        close = []
        for note, near in zip(notes, neighbours, strict=True):
            note.links = links_for(note, near, cfg, now)
            close.append([(nid, sim) for nid, sim in near if sim >= cfg.evolve_threshold])
        return LinkPlan(notes, close, cfg)

    def _earlier_neighbours(self, notes: list[Note], vectors: np.ndarray, rows: list[int],
                            k: int) -> list[list[tuple[str, float]]]:
        """Each note's ``k`` nearest notes among its linking scope's rows stored before it (so
        linking costs O(scope) per note, not O(all notes)); a scope's notes in one batch share one
        gather and one matrix product."""
        by_scope: dict[Scope, list[int]] = {}
        for i, note in enumerate(notes):
            by_scope.setdefault(_link_scope(note.scope), []).append(i)
        out: list[list[tuple[str, float]]] = [[] for _ in notes]
        for scope, members in by_scope.items():
            allowed = self.index.rows(scope, include_archived=False)
            found = self.index.dense_among_prefixes(vectors[members], k, allowed, [rows[i] for i in members])
            for i, near in zip(members, found, strict=True):
                out[i] = near
        return out

    def _rank(self, query: str, qvec: np.ndarray, scope: Scope, predicate: Any, top_k: int, when: datetime,
              include_archived: bool, graph_notes: Sequence[str] = ()) -> list[Hit]:
        """The note ranking of ``search`` without its recall side effect (benchmarks score it)."""
        return self._ranked(query, qvec, scope, predicate, top_k, when, include_archived, graph_notes)[0]

    def _ranked(self, query: str, qvec: np.ndarray, scope: Scope, predicate: Any, top_k: int, when: datetime,
                include_archived: bool, graph_notes: Sequence[str]) -> tuple[list[Hit], float]:
        # Superseding notes go first also in an ``as_of`` search: the pool then holds only notes
        # told by that time, so a newer note in it was the current one then.
        mask = self.index.mask(scope, include_archived)
        if predicate is not None:
            mask = self.index.restrict(mask, self.store.matching_ids(scope, include_archived, predicate))
        cands = self.index.candidates(qvec, query, mask, self.config.ranking.pool(top_k))
        if graph_notes:
            cands = self.index.with_graph(cands, list(graph_notes), mask)
        states = self.store.rank_states([c.note_id for c in cands])
        rets = {nid: retention(days_between(st.last_touched, when), st.strength) for nid, st in states.items()}
        vectors = self.index.vectors_of([c.row for c in cands])
        newer = self.store.supersessions(list(states)) if self.config.ranking.current_first else []
        scored, top_raw = rank(cands, states, rets, vectors, when, top_k, self.config.ranking, newer,
                               asked_speaker(query))
        return to_hits(scored, self.store.get_many([s.candidate.note_id for s in scored])), top_raw

    def _graph_ranking(self, query: str, qvec: np.ndarray, scope: Scope, as_of: datetime | None,
                       top_k: int) -> GraphRanking | None:
        """Facts for the query and the notes behind them; None when graph search is off."""
        cfg = self.config.graph_search
        if not cfg.enabled:
            return None
        return rank_graph(self.graph, query, qvec, scope, as_of, max(top_k, cfg.max_facts), cfg)

    def _reinforce(self, hits: list[Hit], when: datetime, query: str) -> None:
        recalls = self.store.recall([h.id for h in hits], when, "search", query)
        for hit in hits:
            if hit.id in recalls:
                hit.note.strength = recalls[hit.id].strength_after
                hit.note.recall_count += 1
                hit.note.last_recalled_at = when


def _until(filters: dict[str, Any] | None, world: datetime | None) -> dict[str, Any] | None:
    """``filters`` narrowed to notes whose event happened by ``world`` (an ``as_of`` search)."""
    if world is None:
        return filters
    until = {"event_time": {"lte": world.isoformat()}}
    return until if filters is None else {"AND": [filters, until]}


def _link_scope(scope: Scope) -> Scope:
    """Where a note looks for neighbours: its user's (or agent's) notes across sessions, since a
    session is a slice of time, not a separate memory; a session-only note stays in its session."""
    if scope.user_id is None and scope.agent_id is None:
        return scope
    return Scope(scope.user_id, scope.agent_id, None)


def _as_stored(notes: list[Note], linked: Linked) -> None:
    """Callers get a batch's notes as stored: without the links the transaction dropped, and
    evolved. A note that a later one of its batch evolved went in with its drafted keywords and
    tags (what history's add shows) and then changed like any other neighbour, so its history has
    the evolve from them."""
    kept = {(link.source_id, link.target_id) for link in linked.links}
    batch = {note.id: note for note in notes}
    for note in notes:
        note.links = [link for link in note.links if (link.source_id, link.target_id) in kept]
    for change in linked.evolutions:  # in order: the last change of a note is its stored state
        if change.note_id in batch:
            batch[change.note_id].keywords, batch[change.note_id].tags = list(change.keywords), list(change.tags)


def _indexed(note: Note) -> IndexedNote:
    return IndexedNote(note.id, note.scope, note.content, note.archived, None)


def _default_interval(signal: object) -> float:
    """With LISTEN the interval is only a safety net; a SQLite follower polls at this pace."""
    return 0.1 if isinstance(signal, PollSignal) else 1.0


def _index_folder(path: str | Path, url: str | None, index_dir: str | Path | None, persist_index: bool) -> Path | None:
    if not persist_index:
        return None
    if index_dir is not None:
        return Path(index_dir)
    if url is None:
        return Path(str(Path(path).expanduser().resolve()) + ".index")
    return None
