"""The durable job queue: enrichment that may call a model runs from SQL rows, never from memory.

A job is enqueued in the same transaction as the write that causes it (``NoteStore.insert(...,
jobs=...)``), so an acknowledged note always has its job. Workers claim jobs with a lease: a claimed
job is ``running`` until ``lease_until``; a worker that dies leaves it there, and once the lease has
run out any worker may claim it again. A failed attempt goes back to ``queued`` with exponential
backoff; after ``max_attempts`` it ends ``failed`` with its error kept — jobs never vanish.

The claim is one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``: on
PostgreSQL concurrent workers skip each other's rows; SQLite ignores the locking clause, and a single
UPDATE statement is atomic there (one writer at a time).

Usage::

    jobs = JobStore(engine, JobConfig())
    jobs.enqueue([JobSpec("graph", note_id)], now)
    for job in jobs.claim(now, limit=1):
        try: ...; jobs.complete(job, now, {"facts": 2})
        except Exception as exc: jobs.fail(job, f"{exc}", now)
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from memory.config import JobConfig
from memory.errors import InvalidInput, NotFound
from memory.schema import JobRow
from memory.transactions import session_tx

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATES = (QUEUED, RUNNING, DONE, FAILED)
_ERROR_CHARS = 4000


class PermanentFailure(Exception):
    """Raised by a job handler when another attempt cannot help (e.g. a model's answer stayed
    invalid after its repair attempt under greedy decoding): the job ends ``failed`` at once."""


@dataclass(frozen=True)
class JobSpec:
    """A job to enqueue. Usage: ``JobSpec("graph", note.id)``."""

    kind: str
    note_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    """One stored job as a worker or caller sees it."""

    id: int
    kind: str
    note_id: str | None
    payload: dict[str, Any]
    state: str
    attempts: int
    max_attempts: int
    next_run_at: datetime
    lease_until: datetime | None
    last_error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


def job_values(spec: JobSpec, now: datetime, cfg: JobConfig) -> dict[str, Any]:
    """The row of a new job, for a bulk insert inside another store's transaction."""
    return {"kind": spec.kind, "note_id": spec.note_id, "payload": dict(spec.payload), "state": QUEUED,
            "attempts": 0, "max_attempts": cfg.max_attempts, "next_run_at": now, "lease_until": None,
            "last_error": None, "result": None, "created_at": now, "updated_at": now}


def backoff(attempts: int, cfg: JobConfig) -> timedelta:
    """Delay before the next try after ``attempts`` failed ones: base * 2**(attempts-1), capped."""
    return timedelta(seconds=min(cfg.backoff_s * 2 ** max(attempts - 1, 0), cfg.max_backoff_s))


class JobStore:
    """Jobs on one SQLAlchemy engine (the notes' engine: same database, same transactions)."""

    def __init__(self, engine: Engine, cfg: JobConfig) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.cfg = cfg

    def _tx(self) -> AbstractContextManager[Session]:
        return session_tx(self._sessions)

    # ---- writes -------------------------------------------------------------------------

    def enqueue(self, specs: Sequence[JobSpec], now: datetime) -> None:
        """Queue jobs on their own (writes that have a transaction pass ``jobs=`` to the note store)."""
        if specs:
            with self._tx() as s:
                s.execute(insert(JobRow), [job_values(j, now, self.cfg) for j in specs])

    def claim(self, now: datetime, limit: int = 1, kinds: Sequence[str] | None = None) -> list[Job]:
        """Take up to ``limit`` due jobs (queued and due, or running with an expired lease), oldest
        due first; each gets a lease and one more attempt. Jobs out of attempts are failed first."""
        lease = now + timedelta(seconds=self.cfg.lease_s)
        with self._tx() as s:
            self._reap(s, now)
            picked = (select(JobRow.id).where(_claimable(now), JobRow.attempts < JobRow.max_attempts)
                      .order_by(JobRow.next_run_at, JobRow.id).limit(limit).with_for_update(skip_locked=True))
            if kinds is not None:
                picked = picked.where(JobRow.kind.in_(list(kinds)))
            stmt = (update(JobRow).where(JobRow.id.in_(picked))
                    .values(state=RUNNING, attempts=JobRow.attempts + 1, lease_until=lease, updated_at=now)
                    .returning(*_COLUMNS))
            rows = s.execute(stmt, execution_options={"synchronize_session": False}).all()
        return sorted((_job(r) for r in rows), key=lambda j: (j.next_run_at, j.id))

    def complete(self, job: Job, now: datetime, result: dict[str, Any] | None = None) -> bool:
        """Mark a claimed job done; False when the claim was lost (lease expired, taken over)."""
        with self._tx() as s:
            res = s.execute(update(JobRow).where(*_held(job)).values(
                state=DONE, lease_until=None, result=result, updated_at=now))
            return res.rowcount == 1

    def fail(self, job: Job, error: str, now: datetime, *, final: bool = False) -> str | None:
        """Record a failed attempt: back to ``queued`` after a backoff, or ``failed`` when out of
        attempts (or ``final``). Returns the new state (None when the claim was lost)."""
        state = FAILED if final or job.attempts >= job.max_attempts else QUEUED
        due = now + backoff(job.attempts, self.cfg)
        with self._tx() as s:
            res = s.execute(update(JobRow).where(*_held(job)).values(
                state=state, lease_until=None, next_run_at=due if state == QUEUED else job.next_run_at,
                last_error=error[:_ERROR_CHARS], updated_at=now))
            return state if res.rowcount == 1 else None

    def release(self, job: Job, now: datetime) -> bool:
        """Give back a claimed job that was not started (a worker shutting down): queued again,
        due at once, the claim's attempt not counted. False when the claim was lost."""
        with self._tx() as s:
            res = s.execute(update(JobRow).where(*_held(job)).values(
                state=QUEUED, attempts=JobRow.attempts - 1, lease_until=None, updated_at=now))
            return res.rowcount == 1

    def retry(self, job_id: int, now: datetime) -> Job:
        """Queue a failed job again with fresh attempts (its last error stays until it runs)."""
        with self._tx() as s:
            row = s.get(JobRow, job_id) if _possible_id(job_id) else None
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            if row.state != FAILED:
                raise InvalidInput(f"job {job_id} is {row.state}; only failed jobs can be retried")
            row.state, row.attempts, row.next_run_at, row.updated_at = QUEUED, 0, now, now
            s.flush()
            return _job(row)

    @staticmethod
    def _reap(s: Session, now: datetime) -> None:
        """Running jobs whose lease ran out after their last allowed attempt end ``failed``."""
        s.execute(update(JobRow).where(JobRow.state == RUNNING, JobRow.lease_until < now,
                                       JobRow.attempts >= JobRow.max_attempts)
                  .values(state=FAILED, lease_until=None, updated_at=now,
                          last_error=func.coalesce(JobRow.last_error, "") + " [lease expired: worker lost]"),
                  execution_options={"synchronize_session": False})

    # ---- reads --------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        with self._tx() as s:
            row = s.get(JobRow, job_id) if _possible_id(job_id) else None
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            return _job(row)

    def list(self, state: str | None = None, limit: int = 100, note_id: str | None = None) -> list[Job]:
        """Jobs, newest first, optionally in one state or for one note."""
        if state is not None and state not in STATES:
            raise InvalidInput(f"state must be one of {STATES}")
        stmt = select(*_COLUMNS)
        if state is not None:
            stmt = stmt.where(JobRow.state == state)
        if note_id is not None:
            stmt = stmt.where(JobRow.note_id == note_id)
        with self._tx() as s:
            return [_job(r) for r in s.execute(stmt.order_by(JobRow.id.desc()).limit(limit))]

    def counts(self) -> dict[str, int]:
        """Number of jobs per state (every state present)."""
        with self._tx() as s:
            found = dict(s.execute(select(JobRow.state, func.count()).group_by(JobRow.state)).all())
        return {state: int(found.get(state, 0)) for state in STATES}

    def next_due(self, now: datetime) -> datetime | None:
        """When the next unfinished job becomes claimable (``now`` if one is already); None if none."""
        with self._tx() as s:
            due = s.scalar(select(func.min(JobRow.next_run_at)).where(JobRow.state == QUEUED))
            lease = s.scalar(select(func.min(JobRow.lease_until)).where(JobRow.state == RUNNING))
        times = [t for t in (due, lease) if t is not None]
        return max(min(times), now) if times else None


_COLUMNS = [JobRow.id, JobRow.kind, JobRow.note_id, JobRow.payload, JobRow.state, JobRow.attempts,
            JobRow.max_attempts, JobRow.next_run_at, JobRow.lease_until, JobRow.last_error, JobRow.result,
            JobRow.created_at, JobRow.updated_at]


def _claimable(now: datetime) -> Any:
    return or_(and_(JobRow.state == QUEUED, JobRow.next_run_at <= now),
               and_(JobRow.state == RUNNING, JobRow.lease_until < now))


def _held(job: Job) -> list[Any]:
    """Still ours: running with the attempt number we claimed (a fencing token)."""
    return [JobRow.id == job.id, JobRow.state == RUNNING, JobRow.attempts == job.attempts]


def _job(row: Any) -> Job:
    return Job(row.id, row.kind, row.note_id, dict(row.payload or {}), row.state, row.attempts, row.max_attempts,
               row.next_run_at, row.lease_until, row.last_error, row.result, row.created_at, row.updated_at)


# Job ids are INTEGER: 32 bits on PostgreSQL, 64 on SQLite. An id past that cannot name a job, and
# handing it to the driver fails (OverflowError, NumericValueOutOfRange) instead of finding nothing.
_MAX_ID = 2**31 - 1


def _possible_id(job_id: object) -> bool:
    return isinstance(job_id, int) and not isinstance(job_id, bool) and 1 <= job_id <= _MAX_ID
