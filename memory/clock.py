"""Injectable clocks. Every time-dependent computation takes ``now`` from one of these."""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The wall clock, timezone-aware UTC. Usage: ``Engram(clock=system_clock)``."""
    return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to. Usage: ``c = FrozenClock(t0); c.advance(days=3)``."""

    def __init__(self, start: datetime) -> None:
        self._now = start if start.tzinfo else start.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when if when.tzinfo else when.replace(tzinfo=UTC)

    def advance(self, **delta: float) -> datetime:
        self._now = self._now + timedelta(**delta)
        return self._now
