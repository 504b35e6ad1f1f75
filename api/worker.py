"""Background workers that drain the job queue, and the runner that executes one job.

``JobRunner.run_batch`` claims due jobs, calls the handler of each one's kind and records the outcome
(done with its result, or a failed attempt with the error). ``Workers`` run it in daemon threads,
sleeping ``poll_s`` between empty polls unless woken (``wake()`` after an enqueue). Stopping lets the
job in hand finish and releases the rest of its batch, so nothing is left claimed by a clean
shutdown; a crash leaves the job's lease
to run out, after which any worker takes it again.

Usage::

    runner = JobRunner(job_store, {"graph": handle_graph}, clock)
    workers = Workers(runner, count=1, poll_s=0.5, batch=8); workers.start(); ...; workers.stop()
"""
from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from memory.clock import Clock
from memory.jobs import Job, JobStore, PermanentFailure

log = logging.getLogger(__name__)

Handler = Callable[[Job], dict[str, Any] | None]


class JobRunner:
    """Runs jobs by kind. A job of a kind without a handler fails (visibly) instead of vanishing."""

    def __init__(self, jobs: JobStore, handlers: Mapping[str, Handler], clock: Clock) -> None:
        self.jobs = jobs
        self.handlers = dict(handlers)
        self.clock = clock

    def run_one(self) -> bool:
        """Claim and run one due job; False when none was due."""
        return self.run_batch(1) == 1

    def run_batch(self, limit: int, stopping: Callable[[], bool] = lambda: False) -> int:
        """Claim up to ``limit`` due jobs in one transaction and run them in turn; returns how many
        ran. One claim per batch instead of per job: a claim is a durable (fsynced) write. Once
        ``stopping()`` is true, the jobs not started yet are released (queued again, no attempt lost)."""
        claimed = self.jobs.claim(self.clock(), limit=limit)
        ran = 0
        for job in claimed:
            if stopping():
                self.jobs.release(job, self.clock())
                continue
            self.execute(job)
            ran += 1
        return ran

    def execute(self, job: Job) -> None:
        """Run a claimed job and record its outcome."""
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            result = handler(job)
        except Exception as exc:  # any handler failure is recorded on the job, then retried or failed
            error = f"{exc.__class__.__name__}: {exc}\n{_where(exc)}"
            state = self.jobs.fail(job, error, self.clock(), final=isinstance(exc, PermanentFailure))
            log.warning("job %s (%s) attempt %s failed -> %s: %s", job.id, job.kind, job.attempts, state, exc)
            return
        if not self.jobs.complete(job, self.clock(), result):
            log.warning("job %s (%s) finished after its lease was taken over; result dropped", job.id, job.kind)


class Workers:
    """``count`` daemon threads draining a JobRunner. Usage: see module doc."""

    def __init__(self, runner: JobRunner, count: int, poll_s: float, batch: int = 1) -> None:
        self._runner = runner
        self._count = count
        self._poll_s = poll_s
        self._batch = batch
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self._count):
            thread = threading.Thread(target=self._loop, name=f"engram-jobs-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """New work was queued: poll now instead of after the sleep."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the job in hand, give back the claimed ones not started, then end the threads."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    @property
    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self._runner.run_batch(self._batch, self._stop.is_set) > 0
            except Exception:  # a database hiccup must not kill the worker; the job's lease covers it
                log.exception("job worker poll failed")
                ran = False
            if not ran:
                self._wake.wait(self._poll_s)
                self._wake.clear()


def _where(exc: BaseException) -> str:
    """The innermost frame of the traceback: enough to find the failing line, short enough to store."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"at {last.filename}:{last.lineno} in {last.name}"
