"""The SQL store of notes: every write is one transaction that also writes history and the change feed.

Foreign (SQLAlchemy) errors become StorageError in memory.transactions, which every query here runs in.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from memory.bulk import Executemany
from memory.config import JobConfig
from memory.database import bookkeeping_engine
from memory.deferred_indexes import deferred_indexes
from memory.enrichment import Enrichment
from memory.errors import IdempotencyKeyTaken, NotFound
from memory.forgetting import ForgettingConfig, reinforce, retention
from memory.jobs import JobSpec, job_values
from memory.linking import Evolution, Linked, LinkPlan, Neighbour
from memory.rows import filter_record, history_from_row, link_from_row, note_from_row, note_snapshot, snapshot
from memory.schema import CONTRADICTS_ONLY, AccessRow, ChangeRow, HistoryRow, IdempotencyRow, JobRow, LinkRow, NoteRow
from memory.transactions import read_tx, session_tx, write_tx
from memory.timeutil import days_between
from memory.types import HistoryEntry, Idempotency, IndexedNote, Link, Note, RankState, Scope


@dataclass(frozen=True)
class Change:
    """One row of the change feed: note ``note_id`` was upserted or deleted by writer ``origin``."""

    seq: int
    note_id: str
    op: str
    origin: str | None


@dataclass(frozen=True)
class Recall:
    """The forgetting-curve state of a note when it was recalled."""

    retention_before: float
    strength_after: float


class NoteStore:
    """Notes, links, accesses, history and the change feed on one SQLAlchemy engine.

    Usage: ``store = NoteStore(open_engine(sqlite_url("engram.db")), ForgettingConfig())``.
    ``origin`` tags this writer's change rows, so its own follower can skip what it already applied.
    """

    def __init__(self, engine: Engine, forgetting: ForgettingConfig, jobs: JobConfig | None = None, *,
                 origin: str | None = None) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._bookkeeping = bookkeeping_engine(engine)
        self._forgetting = forgetting
        self._jobs = jobs or JobConfig()
        self._origin = origin
        self._postgres = engine.dialect.name == "postgresql"

    @property
    def origin(self) -> str | None:
        return self._origin

    @property
    def engine(self) -> Engine:
        """The SQL engine (the job store and the graph share it: one database)."""
        return self._engine

    def _tx(self) -> AbstractContextManager[Session]:
        return session_tx(self._sessions)

    def bulk_ingest(self, new_notes: int, min_notes: int) -> AbstractContextManager[list[str]]:
        """Around an ingest of ``new_notes`` notes: the secondary indexes that one build at the end
        makes cheaper are dropped until then (memory/deferred_indexes.py), from ``min_notes`` notes
        on. Yields their names."""
        return deferred_indexes(self._engine, new_notes, min_notes=min_notes)

    @contextmanager
    def _relaxed_tx(self) -> Iterator[Connection]:
        """A transaction whose commit may return before it reaches the disk (see
        ``bookkeeping_engine``): for recall bookkeeping only, never for an acknowledged write. A
        plain connection, not an ORM session: this runs on every search, and the session added
        ~0.2 ms to a 10-note recall (2.46 against 2.23 ms at p50, 2-core AVX2 EPYC, 100k store)."""
        with write_tx(self._bookkeeping) as conn:
            if self._postgres:
                conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
            yield conn

    # ---- writes -------------------------------------------------------------------------

    def insert(self, notes: Sequence[Note], embeddings: Sequence[bytes | None], embed_model: str, actor: str,
               links: Sequence[Link] = (), plan: LinkPlan | None = None, jobs: Sequence[JobSpec] = (),
               idempotency: Idempotency | None = None) -> Linked:
        """Insert new notes with their embeddings, links and the neighbour evolutions they cause,
        history and change rows, and the enrichment jobs they need — one transaction, all or
        nothing (one fsync per batch): an acknowledged note always has its jobs. ``links`` are
        stored as given; ``plan``'s are kept, and its evolutions decided, from its neighbours as
        read inside the transaction after the notes are written (so under the write lock, on
        SQLite; their rows locked, on PostgreSQL). Returns what the plan came to. With
        ``idempotency``, its key is stored in the same transaction; IdempotencyKeyTaken (nothing
        written) when the key is already there."""
        linked = Linked([], [])
        if not notes:
            return linked
        # Bulk executemany into the tables (memory/bulk.py): without the ORM's per-row bookkeeping,
        # and on SQLite without SQLAlchemy's per-value bind processing either.
        with self._tx() as s:
            if idempotency is not None:
                self._claim_key(s, idempotency, [n.id for n in notes], notes[0].created_at)
            _INSERT_NOTES(s, [_new_values(n, e, embed_model) for n, e in zip(notes, embeddings, strict=True)])
            _INSERT_HISTORY(s, [{"note_id": n.id, "action": "add", "old": None, "new": note_snapshot(n),
                                 "actor": actor, "at": n.created_at} for n in notes])
            if plan is not None:
                linked = plan.decide(self._neighbours_locked(s, plan.stored_ids()))
            _INSERT_LINKS(s, [{"source_id": lk.source_id, "target_id": lk.target_id, "kind": lk.kind,
                               "weight": lk.weight, "created_at": lk.created_at} for lk in [*links, *linked.links]])
            self._apply_evolutions(s, linked.evolutions, notes[0].created_at)
            self._enqueue(s, jobs, notes[0].created_at)
            self._log_changes(s, [(n.id, "upsert") for n in notes], notes[0].created_at)
        return linked

    @staticmethod
    def _neighbours_locked(s: Session, note_ids: list[str]) -> dict[str, Neighbour]:
        """Text, keywords and tags of notes (missing ids are absent), read inside a write transaction:
        the rows stay locked until it ends on PostgreSQL, and SQLite's write lock was taken by the
        transaction's first insert."""
        if not note_ids:
            return {}
        return {nid: Neighbour(nid, content, list(kw or []), list(tags or []))
                for nid, content, kw, tags in s.execute(_NEIGHBOURS_LOCKED, {"ids": note_ids})}

    @staticmethod
    def _claim_key(s: Session, idem: Idempotency, note_ids: list[str], now: datetime) -> None:
        """The key's row goes first: a concurrent add under the same key waits on it (PostgreSQL's
        unique index; SQLite's single writer) and then fails here, before writing anything."""
        try:
            s.execute(insert(IdempotencyRow), {"key": idem.key, "request_hash": idem.request_hash,
                                               "note_ids": note_ids, "created_at": now})
        except IntegrityError as exc:
            raise IdempotencyKeyTaken(f"idempotency key {idem.key!r} is already used") from exc

    def idempotent(self, key: str) -> tuple[str, list[str]] | None:
        """The request hash and note ids stored under an idempotency key, or None."""
        stmt = select(IdempotencyRow.request_hash, IdempotencyRow.note_ids).where(IdempotencyRow.key == key)
        with read_tx(self._engine) as conn:
            row = conn.execute(stmt).first()
        return None if row is None else (row[0], list(row[1]))

    def _enqueue(self, s: Session, jobs: Sequence[JobSpec], now: datetime) -> None:
        _INSERT_JOBS(s, [job_values(j, now, self._jobs) for j in jobs])

    def _log_changes(self, s: Session, changes: Sequence[tuple[str, str]], now: datetime) -> None:
        """Append to the change feed as the transaction's last step, and wake the followers.

        On PostgreSQL, sequence numbers are handed out when rows are inserted but become visible
        when their transaction commits, so a follower that read seq 11 could later find a seq 10
        that committed after it and skip it forever. A transaction-scoped advisory lock taken
        here, after every other row of the transaction is written (so nothing else is waited for
        while holding it), makes feed writers take turns from their first seq to their commit:
        a seq becomes visible only after every smaller one committed or rolled back. The lock is
        held for one INSERT and the commit. NOTIFY is transactional: delivered at commit, and
        never for a rolled-back write. SQLite has one writer at a time, so its order is the
        commit order already.
        """
        if not changes:
            return
        s.flush()
        if self._postgres:
            s.execute(text("SELECT pg_advisory_xact_lock(hashtext('engram.changes.' || current_schema()))"))
        _INSERT_CHANGES(s, [{"note_id": nid, "op": op, "at": now, "origin": self._origin} for nid, op in changes])
        if self._postgres:
            s.execute(text("SELECT pg_notify(" + CHANNEL_SQL + ", :origin)"), {"origin": self._origin or ""})

    @staticmethod
    def _apply_evolutions(s: Session, evolutions: Sequence[Evolution], now: datetime) -> None:
        """Neighbours' new keywords/tags in one executemany UPDATE and one INSERT of history; a
        note evolved twice in a batch gets two history rows, each with the value it replaced."""
        if not evolutions:
            return
        final = {change.note_id: change for change in evolutions}  # the last change of each note
        _EVOLVE_NOTES(s, [{"nid": nid, "keywords": list(change.keywords), "tags": list(change.tags), "updated_at": now}
                          for nid, change in sorted(final.items())])  # id order: see recall
        _INSERT_HISTORY(s, [{"note_id": change.note_id, "action": "evolve", "actor": "evolve", "at": now,
                             "old": {"keywords": list(change.old_keywords), "tags": list(change.old_tags)},
                             "new": {"keywords": list(change.keywords), "tags": list(change.tags),
                                     "cause": change.cause_id}}
                            for change in evolutions])

    def update(self, note_id: str, changes: dict[str, Any], now: datetime, actor: str,
               jobs: Sequence[JobSpec] = ()) -> Note:
        """Apply ``changes`` (NoteRow attribute → value) to one note and audit it; ``jobs`` are
        queued in the same transaction."""
        with self._tx() as s:
            row = self._row(s, note_id)
            old = snapshot(row)
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated_at = now
            s.add(_history(note_id, "update", old, snapshot(row), actor, now))
            self._enqueue(s, jobs, now)
            self._log_changes(s, [(note_id, "upsert")], now)
            return note_from_row(row)

    def delete(self, note_id: str, now: datetime, actor: str, jobs: Sequence[JobSpec] = ()) -> None:
        """Delete a note and its links; its history stays (with the old content). ``jobs`` (e.g.
        retracting its facts from the graph) are queued in the same transaction."""
        with self._tx() as s:
            row = self._row(s, note_id)
            s.add(_history(note_id, "delete", snapshot(row), None, actor, now))
            s.execute(LinkRow.__table__.delete().where(or_(LinkRow.source_id == note_id, LinkRow.target_id == note_id)))
            s.execute(AccessRow.__table__.delete().where(AccessRow.note_id == note_id))
            s.delete(row)
            self._enqueue(s, jobs, now)
            self._log_changes(s, [(note_id, "delete")], now)

    def add_links(self, links: Sequence[Link], actor: str | None = None,
                  cause: dict[str, Any] | None = None) -> list[Link]:
        """Insert links that do not exist yet, between notes that still exist; returns the new
        ones. With ``actor``, each new link is audited in its source note's history (action "link")."""
        if not links:
            return []
        with self._tx() as s:
            ids = {i for lk in links for i in (lk.source_id, lk.target_id)}
            present = set(s.scalars(select(NoteRow.id).where(NoteRow.id.in_(ids))))
            added: list[Link] = []
            for link in links:
                if {link.source_id, link.target_id} <= present and s.scalar(_link_exists(link)) is None:
                    s.add(LinkRow(source_id=link.source_id, target_id=link.target_id, kind=link.kind,
                                  weight=link.weight, created_at=link.created_at))
                    if actor is not None:
                        new = {"link": {"target": link.target_id, "kind": link.kind, "weight": link.weight},
                               **(cause or {})}
                        s.add(_history(link.source_id, "link", None, new, actor, link.created_at))
                    added.append(link)
            return added

    def remove_links(self, source_id: str, kind: str, now: datetime, actor: str) -> int:
        """Drop a note's outgoing links of one kind (its content changed, so what they said may no
        longer hold), each audited in its history; returns how many went."""
        with self._tx() as s:
            rows = s.scalars(select(LinkRow).where(LinkRow.source_id == source_id, LinkRow.kind == kind)).all()
            for row in rows:
                old = {"link": {"target": row.target_id, "kind": row.kind, "weight": row.weight}}
                s.add(_history(source_id, "unlink", old, None, actor, now))
                s.delete(row)
            return len(rows)

    def apply_enrichment(self, note_id: str, enrichment: Enrichment, links: Sequence[Link], now: datetime,
                         actor: str, cause: dict[str, Any]) -> dict[str, Any] | None:
        """Apply a validated LLM enrichment in one transaction: the note's keywords, tags (its
        system tags such as "role:user" kept) and context; each neighbour's new context/tags as an
        ``evolve`` history entry (content is never touched); new links. None if the note is gone;
        neighbours deleted meanwhile are skipped."""
        with self._tx() as s:
            row = s.get(NoteRow, note_id)
            if row is None:
                return None
            old = {"keywords": list(row.keywords or []), "tags": list(row.tags or []), "context": row.context}
            system = [t for t in old["tags"] if ":" in t]
            new = {"keywords": list(enrichment.keywords), "context": enrichment.context,
                   "tags": system + [t for t in enrichment.tags if t not in system]}
            row.keywords, row.tags, row.context, row.updated_at = new["keywords"], new["tags"], new["context"], now
            s.add(_history(note_id, "enrich", old, {**new, **cause}, actor, now))
            evolved = []
            for change in enrichment.neighbours:
                other = s.get(NoteRow, change.note_id)
                if other is None or (change.context is None and change.tags is None):
                    continue
                before = {"context": other.context, "tags": list(other.tags or [])}
                other.context = change.context if change.context is not None else other.context
                other.tags = list(change.tags) if change.tags is not None else other.tags
                other.updated_at = now
                after = {"context": other.context, "tags": list(other.tags), "cause": note_id, **cause}
                s.add(_history(other.id, "evolve", before, after, actor, now))
                evolved.append(other.id)
            present = set(s.scalars(select(NoteRow.id).where(NoteRow.id.in_({lk.target_id for lk in links}))))
            linked = []
            for link in links:
                if link.target_id in present and s.scalar(_link_exists(link)) is None:
                    s.add(LinkRow(source_id=link.source_id, target_id=link.target_id, kind=link.kind,
                                  weight=link.weight, created_at=link.created_at))
                    linked.append(link.target_id)
            return {"evolved": evolved, "linked": linked}

    def recall(self, note_ids: Sequence[str], now: datetime, kind: str, query: str | None) -> dict[str, Recall]:
        """Reinforce recalled notes and log the accesses in the same transaction.

        Bulk statements (one SELECT, one executemany UPDATE, one executemany INSERT): this runs on
        every search, so it must cost one round trip per step, not one per hit.
        """
        out: dict[str, Recall] = {}
        if not note_ids:
            return out
        cols = (NoteRow.id, NoteRow.event_time, NoteRow.last_recalled_at, NoteRow.strength, NoteRow.recall_count)
        with self._relaxed_tx() as s:
            # Rows locked in id order, as every writer of several notes does: two transactions
            # locking overlapping notes in different orders would deadlock on PostgreSQL. And FOR
            # NO KEY UPDATE (key_share), the lock an UPDATE of these non-key columns takes: plain
            # FOR UPDATE also waits for the KEY SHARE locks that inserting a link (its foreign
            # keys) takes on the notes it names, in link order, and a recall and an add that
            # links to the same notes deadlocked.
            rows = s.execute(select(*cols).where(NoteRow.id.in_(_IDS)).order_by(NoteRow.id)
                             .with_for_update(key_share=True),
                             {"ids": list(note_ids)}).all()
            updates, accesses = [], []
            for nid, event_time, last, strength, count in rows:
                r = retention(days_between(last or event_time, now), strength)
                after = reinforce(strength, r, self._forgetting)
                # Asking "as of" an earlier time must not move the curve's clock backwards.
                when = max(now, last or now)
                updates.append({"nid": nid, "strength": after, "last_recalled_at": when, "recall_count": count + 1})
                accesses.append({"note_id": nid, "kind": kind, "query": query, "retention": r,
                                 "strength_after": after, "at": now})
                out[nid] = Recall(r, after)
            if updates:
                # A Core executemany keyed by a bound id: the ORM's bulk-update path cost ~1.5 ms
                # more per search for the same statement.
                _RECALL_UPDATE(s, updates)
                _ACCESS_INSERT(s, accesses)
        return out

    def set_archived(self, note_ids: Sequence[str], archived: bool, now: datetime, actor: str) -> list[str]:
        """Archive or restore notes; returns the ids whose state changed."""
        action = "archive" if archived else "restore"
        changed: list[str] = []
        with self._tx() as s:
            for row in s.scalars(select(NoteRow).where(NoteRow.id.in_(list(note_ids)))):
                if row.archived == archived:
                    continue
                old = snapshot(row)
                row.archived, row.updated_at = archived, now
                s.add(_history(row.id, action, old, snapshot(row), actor, now))
                changed.append(row.id)
            self._log_changes(s, [(nid, "upsert") for nid in changed], now)
        return changed

    def faded(self, scope: Scope | None, now: datetime, threshold: float) -> list[str]:
        """Ids of live notes whose retention at ``now`` is below ``threshold``."""
        cols = (NoteRow.id, NoteRow.event_time, NoteRow.last_recalled_at, NoteRow.strength)
        stmt = select(*cols).where(NoteRow.archived.is_(False), *_scope_clauses(scope))
        with self._tx() as s:
            return [nid for nid, et, lr, st in s.execute(stmt)
                    if retention(days_between(lr or et, now), st) < threshold]

    # ---- reads --------------------------------------------------------------------------

    def get(self, note_id: str) -> Note:
        """One note with its links. Raises NotFound."""
        with self._tx() as s:
            note = note_from_row(self._row(s, note_id))
            note.links = self._links(s, note_id)
            return note

    def get_many(self, note_ids: Sequence[str]) -> dict[str, Note]:
        """Notes by id (missing ids are absent from the result)."""
        return {row.id: note_from_row(row) for row in self._rows_by_id(_GET_MANY, note_ids)}

    def rank_states(self, note_ids: Sequence[str]) -> dict[str, RankState]:
        """What ranking needs of each note (missing ids are absent): a search reads this for its
        whole candidate pool and full notes only for its hits."""
        return {nid: RankState(session, event, last or event, strength, role)
                for nid, session, event, last, strength, role in self._rows_by_id(_RANK_STATES, note_ids)}

    def supersessions(self, note_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(newer, older) note id pairs of the ``contradicts`` links that point at one of
        ``note_ids``: the newer note says something that makes the older one untrue."""
        return [(newer, older) for newer, older in self._rows_by_id(_SUPERSEDERS, note_ids)]

    def list_notes(self, scope: Scope | None, include_archived: bool, limit: int, offset: int) -> list[Note]:
        """Notes of a scope, oldest event first, paginated."""
        stmt = select(NoteRow).where(*_scope_clauses(scope))
        if not include_archived:
            stmt = stmt.where(NoteRow.archived.is_(False))
        stmt = stmt.order_by(NoteRow.event_time, NoteRow.id).limit(limit).offset(offset)
        with self._tx() as s:
            return [note_from_row(row) for row in s.scalars(stmt)]

    def links(self, note_id: str) -> list[Link]:
        """Links from and to a note. Raises NotFound for an unknown note."""
        with self._tx() as s:
            self._row(s, note_id)
            return self._links(s, note_id)

    def history(self, note_id: str) -> list[HistoryEntry]:
        """The audit trail of a note, oldest first (also after it was deleted)."""
        with self._tx() as s:
            rows = s.scalars(select(HistoryRow).where(HistoryRow.note_id == note_id).order_by(HistoryRow.id)).all()
            if not rows:
                raise NotFound(f"no note {note_id!r}")
            return [history_from_row(r) for r in rows]

    def matching_ids(self, scope: Scope, include_archived: bool, predicate: Callable[[dict[str, Any]], bool]) -> set[str]:
        """Ids of a scope's notes for which ``predicate(filter_record)`` holds."""
        stmt = select(NoteRow).where(*_scope_clauses(scope))
        if not include_archived:
            stmt = stmt.where(NoteRow.archived.is_(False))
        with self._tx() as s:
            return {row.id for row in s.scalars(stmt.execution_options(yield_per=1000)) if predicate(filter_record(row))}

    def indexed_notes(self, note_ids: Sequence[str] | None = None, batch: int = 2000) -> Iterator[IndexedNote]:
        """Everything derived indexes need, in id order; all notes or the given ids."""
        stmt = _indexed_query(note_ids)
        with self._sessions() as s:
            for nid, u, a, sess, content, archived, emb in s.execute(stmt.execution_options(yield_per=batch)):
                yield IndexedNote(nid, Scope(u, a, sess), content, archived, emb)

    def last_change(self) -> int:
        """The newest change-feed sequence number (0 when empty)."""
        with self._tx() as s:
            return int(s.scalar(select(func.coalesce(func.max(ChangeRow.seq), 0))) or 0)

    def changes_after(self, seq: int, limit: int = 10_000) -> list[Change]:
        """Change-feed rows after ``seq``, oldest first, at most ``limit``."""
        stmt = select(ChangeRow.seq, ChangeRow.note_id, ChangeRow.op, ChangeRow.origin)
        with self._tx() as s:
            rows = s.execute(stmt.where(ChangeRow.seq > seq).order_by(ChangeRow.seq).limit(limit))
            return [Change(int(q), nid, op, origin) for q, nid, op, origin in rows]

    def feed_after(self, seq: int, skip_origin: str | None, limit: int = 10_000) -> tuple[list[Change], list[IndexedNote]]:
        """Change-feed rows after ``seq`` and, in the same transaction (one connection checkout,
        which is most of a follower's cost on a busy PostgreSQL), the indexable state of the notes
        they name, except those whose changes all came from ``skip_origin``. Deleted notes are
        absent from the second list."""
        with self._tx() as s:
            stmt = select(ChangeRow.seq, ChangeRow.note_id, ChangeRow.op, ChangeRow.origin)
            rows = s.execute(stmt.where(ChangeRow.seq > seq).order_by(ChangeRow.seq).limit(limit))
            changes = [Change(int(q), nid, op, origin) for q, nid, op, origin in rows]
            ids = list(dict.fromkeys(c.note_id for c in changes if skip_origin is None or c.origin != skip_origin))
            notes = [IndexedNote(nid, Scope(u, a, sess), content, archived, emb)
                     for nid, u, a, sess, content, archived, emb in s.execute(_indexed_query(ids))] if ids else []
            return changes, notes

    def changed_since(self, seq: int) -> list[str]:
        """Note ids changed after ``seq``, each once."""
        with self._tx() as s:
            ids = s.scalars(select(ChangeRow.note_id).where(ChangeRow.seq > seq).order_by(ChangeRow.seq))
            return list(dict.fromkeys(ids))

    def stats(self) -> dict[str, int]:
        """Counts of notes (live and archived), links, accesses and history rows."""
        with self._tx() as s:
            live = s.scalar(select(func.count()).select_from(NoteRow).where(NoteRow.archived.is_(False))) or 0
            archived = s.scalar(select(func.count()).select_from(NoteRow).where(NoteRow.archived.is_(True))) or 0
            return {
                "notes": int(live),
                "archived": int(archived),
                "links": int(s.scalar(select(func.count()).select_from(LinkRow)) or 0),
                "accesses": int(s.scalar(select(func.count()).select_from(AccessRow)) or 0),
                "history": int(s.scalar(select(func.count()).select_from(HistoryRow)) or 0),
            }

    def close(self) -> None:
        self._engine.dispose()
        if self._bookkeeping is not self._engine:
            self._bookkeeping.dispose()

    # ---- helpers ------------------------------------------------------------------------

    def _rows_by_id(self, stmt: Any, note_ids: Sequence[str]) -> list[Any]:
        """Rows of a prepared ``... WHERE id IN :ids`` statement, on a plain connection (no ORM
        session): searches and ingest batches read notes this way on every call."""
        if not note_ids:
            return []
        with read_tx(self._engine) as conn:
            return list(conn.execute(stmt, {"ids": list(note_ids)}))

    @staticmethod
    def _row(s: Session, note_id: str) -> NoteRow:
        row = s.get(NoteRow, note_id) if isinstance(note_id, str) else None
        if row is None:
            raise NotFound(f"no note {note_id!r}")
        return row

    @staticmethod
    def _links(s: Session, note_id: str) -> list[Link]:
        stmt = select(LinkRow).where(or_(LinkRow.source_id == note_id, LinkRow.target_id == note_id)).order_by(LinkRow.id)
        return [link_from_row(r) for r in s.scalars(stmt)]


# The NOTIFY channel of a schema's change feed, computed by the server from the connection's own
# schema (md5 keeps it under PostgreSQL's 63-byte identifier limit for any schema name).
CHANNEL_SQL = "'engram_' || md5(current_schema())"

_NOTES = NoteRow.__table__
# Core, not ``insert(AccessRow)``: the ORM's bulk-insert path made a recall of 10 notes cost
# 2.43 ms at p50 instead of 2.10 (2-core AVX2 EPYC, 100k store, 550 interleaved pairs).
_ACCESS_INSERT = Executemany(insert(AccessRow.__table__))
_RECALL_UPDATE = Executemany(update(_NOTES).where(_NOTES.c.id == bindparam("nid"))
                             .values(strength=bindparam("strength"), last_recalled_at=bindparam("last_recalled_at"),
                                     recall_count=bindparam("recall_count")))
_EVOLVE_NOTES = Executemany(update(_NOTES).where(_NOTES.c.id == bindparam("nid"))
                            .values(keywords=bindparam("keywords"), tags=bindparam("tags"),
                                    updated_at=bindparam("updated_at")))
_INSERT_NOTES = Executemany(insert(_NOTES))
_INSERT_HISTORY = Executemany(insert(HistoryRow.__table__))
_INSERT_LINKS = Executemany(insert(LinkRow.__table__))
_INSERT_JOBS = Executemany(insert(JobRow.__table__))
_INSERT_CHANGES = Executemany(insert(ChangeRow.__table__))
_NOTE_COLUMNS = [getattr(NoteRow, attr.key) for attr in NoteRow.__mapper__.column_attrs if attr.key != "embedding"]
_IDS = bindparam("ids", expanding=True)
# Labelled with the attribute names (the metadata column is ``meta`` in Python) for Core reads.
_GET_MANY = select(*[c.label(c.key) for c in _NOTE_COLUMNS]).where(NoteRow.id.in_(_IDS))
# On PostgreSQL, FOR NO KEY UPDATE in id order: two batches lock shared neighbours in one order,
# and the lock is the one their UPDATE takes anyway. FOR UPDATE would also wait for the key-share
# locks that another batch's link inserts hold on the same notes (foreign key checks), a deadlock
# waiting to happen. The SQLite dialect leaves the clause out.
_NEIGHBOURS_LOCKED = (select(NoteRow.id, NoteRow.content, NoteRow.keywords, NoteRow.tags)
                      .where(NoteRow.id.in_(_IDS)).order_by(NoteRow.id).with_for_update(key_share=True))
# The role of a chat turn sits in its metadata; reading one JSON field in SQL (json_extract on
# SQLite, ->> on PostgreSQL) spares parsing every candidate's whole metadata.
_RANK_STATES = select(NoteRow.id, NoteRow.session_id, NoteRow.event_time, NoteRow.last_recalled_at,
                      NoteRow.strength, NoteRow.meta["role"].as_string()).where(NoteRow.id.in_(_IDS))

_SUPERSEDERS = (select(LinkRow.source_id, LinkRow.target_id)
                .where(LinkRow.target_id.in_(_IDS), text(CONTRADICTS_ONLY)).order_by(LinkRow.id))


def _indexed_query(note_ids: Sequence[str] | None) -> Any:
    stmt = select(NoteRow.id, NoteRow.user_id, NoteRow.agent_id, NoteRow.session_id,
                  NoteRow.content, NoteRow.archived, NoteRow.embedding).order_by(NoteRow.id)
    return stmt if note_ids is None else stmt.where(NoteRow.id.in_(list(note_ids)))


def _new_values(note: Note, embedding: bytes | None, embed_model: str) -> dict[str, Any]:
    return {
        "id": note.id, "user_id": note.scope.user_id, "agent_id": note.scope.agent_id,
        "session_id": note.scope.session_id, "content": note.content, "keywords": list(note.keywords),
        "tags": list(note.tags), "context": note.context, "metadata": dict(note.metadata),
        "created_at": note.created_at, "updated_at": note.created_at, "event_time": note.event_time,
        "last_recalled_at": note.last_recalled_at, "recall_count": note.recall_count, "strength": note.strength,
        "importance": note.importance, "archived": note.archived, "embedding": embedding,
        "embed_model": embed_model if embedding is not None else None,
    }


def _history(note_id: str, action: str, old: dict[str, Any] | None, new: dict[str, Any] | None,
             actor: str, at: datetime) -> HistoryRow:
    return HistoryRow(note_id=note_id, action=action, old=old, new=new, actor=actor, at=at)


def _scope_clauses(scope: Scope | None) -> list[Any]:
    if scope is None:
        return []
    columns = {"user_id": NoteRow.user_id, "agent_id": NoteRow.agent_id, "session_id": NoteRow.session_id}
    return [columns[k] == v for k, v in scope.as_dict().items()]


def _link_exists(link: Link) -> Any:
    return select(LinkRow.id).where(LinkRow.source_id == link.source_id, LinkRow.target_id == link.target_id,
                                    LinkRow.kind == link.kind)
