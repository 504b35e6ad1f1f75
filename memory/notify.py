"""Waking change-feed followers: LISTEN on PostgreSQL, a plain timed wait on SQLite.

The signal only says "the feed may have grown"; what changed is always read from the ``changes``
table, so a lost notification (a dropped connection, a restart) costs delay, never correctness.
Usage: ``signal = change_signal(engine); while ...: signal.wait(1.0); <read changes_after(seq)>``.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from sqlalchemy import Engine

from memory.store import CHANNEL_SQL

log = logging.getLogger(__name__)
_SLICE = 0.25  # longest uninterruptible wait: how long close() may take


class ChangeSignal(Protocol):
    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True when changes may have been committed since."""

    def close(self) -> None: ...


def change_signal(engine: Engine) -> ChangeSignal:
    """LISTEN/NOTIFY on PostgreSQL; on SQLite (no server to notify) the follower polls."""
    if engine.dialect.name == "postgresql":
        return PgListener(engine)
    return PollSignal()


class PollSignal:
    """Nothing tells a SQLite reader about another process's commit: wait out the interval."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    def wait(self, timeout: float) -> bool:
        self._closed.wait(timeout)
        return False

    def close(self) -> None:
        self._closed.set()


class PgListener:
    """One dedicated connection (outside the pool) that LISTENs on the schema's channel.

    A dropped connection is reopened on the next wait, which then answers True: notifications
    sent while it was away are lost, so the caller must catch up from the log.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Any = None
        self._closed = threading.Event()
        # Held while waiting: a psycopg connection must not be closed under a thread that uses it.
        self._busy = threading.Lock()
        self.reconnects = 0

    def wait(self, timeout: float) -> bool:
        with self._busy:
            if self._closed.is_set():
                return False
            return self._wait(timeout)

    def _wait(self, timeout: float) -> bool:
        if self._conn is None:
            return self._reconnect(timeout)
        remaining = timeout
        try:
            while remaining > 0 and not self._closed.is_set():
                step = min(_SLICE, remaining)
                # Run the generator to its end before anything else: it holds the connection's
                # lock until then, so draining from inside the loop would deadlock.
                notified = bool(list(self._conn.notifies(timeout=step, stop_after=1)))
                if notified:
                    self._drain()
                    return True
                remaining -= step
        except Exception as exc:  # noqa: BLE001 - any driver failure means: reconnect and catch up
            log.warning("change listener lost its connection (%s); reconnecting", exc.__class__.__name__)
            self._drop()
            return True
        return False

    def close(self) -> None:
        self._closed.set()
        with self._busy:  # at most one slice of a running wait
            self._drop()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def backend_pid(self) -> int | None:
        """The server process of the LISTEN connection (tests terminate it to simulate a drop)."""
        return None if self._conn is None else int(self._conn.info.backend_pid)

    def _reconnect(self, timeout: float) -> bool:
        try:
            self._conn = self._listen()
        except Exception as exc:  # noqa: BLE001 - the database may be down: retry on the next wait
            log.warning("change listener cannot connect (%s); retrying", exc.__class__.__name__)
            self._closed.wait(timeout)
            return False
        self.reconnects += 1
        return True

    def _listen(self) -> Any:
        pooled = self._engine.raw_connection()
        conn = pooled.driver_connection
        pooled.detach()  # ours for good: never handed back to the pool with LISTEN state on it
        conn.rollback()
        conn.autocommit = True  # notifications arrive between transactions only
        channel = conn.execute(f"SELECT {CHANNEL_SQL}").fetchone()[0]
        conn.execute(f'LISTEN "{channel}"')  # md5 hex: nothing to escape
        return conn

    def _drain(self) -> None:
        """Swallow notifications already queued: one catch-up covers them all."""
        for _ in self._conn.notifies(timeout=0.001):  # timeout=0 means "no timeout" to psycopg
            pass

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - closing a dead connection may fail; it is gone either way
                pass
