"""Following the change feed: keeps an in-process index in step with writes made by other processes.

A daemon thread waits on the database's change signal (LISTEN/NOTIFY on PostgreSQL, a timed poll
on SQLite) and then applies every change after its last applied sequence number. It also applies
after each interval without a signal, so a missed notification delays a note by at most one
interval. A failing database is retried with backoff; nothing is skipped, because the position
only moves past changes that were applied.

Usage: ``f = ChangeFollower(apply, change_signal(engine), interval=1.0); f.start(); ...; f.stop()``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from memory.errors import StorageError
from memory.notify import ChangeSignal

log = logging.getLogger(__name__)

Listener = Callable[[list[str], float], None]


class ChangeFollower:
    """Runs ``apply`` (which applies the feed and returns the note ids it applied) whenever the
    feed may have grown. Listeners get ``(note_ids, wall-clock time applied)`` after each batch
    (wall clock, so a benchmark can compare it with the writing process's time)."""

    def __init__(self, apply: Callable[[], list[str]], signal: ChangeSignal, *, interval: float,
                 max_backoff: float = 5.0) -> None:
        self._apply = apply
        self._signal = signal
        self._interval = interval
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engram-change-feed", daemon=True)
        self._listeners: list[Listener] = []
        self.errors = 0

    @property
    def signal(self) -> ChangeSignal:
        return self._signal

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (within one wait slice) and release the listening connection."""
        self._stop.set()
        self._signal.close()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        backoff = self._interval
        while not self._stop.is_set():
            self._signal.wait(backoff)
            if self._stop.is_set():
                return
            try:
                ids = self._apply()
            except StorageError as exc:
                self.errors += 1
                backoff = min(self._max_backoff, backoff * 2)
                log.warning("change feed: cannot apply (%s); retrying in %.1fs", exc, backoff)
                continue
            backoff = self._interval
            if ids:
                now = time.time()
                for listener in self._listeners:
                    try:
                        listener(ids, now)
                    except Exception:  # a listener's bug must not stop the index from following
                        log.exception("change feed listener failed")
