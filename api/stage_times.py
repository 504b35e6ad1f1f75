"""Where an add's time goes: cumulative seconds per stage (draft, embed, write-lock wait, index,
links, commit), exported through ``Engram.stats()`` and so ``/metrics``. A profile of the live
service without a profiler: the difference of two scrapes divided by the difference of the
counts is the mean per add of each stage. Usage::

    times = StageTimes(); t = times.start(); ...; t = times.lap("embed", t); times.snapshot()
"""
from __future__ import annotations

import threading
import time


class StageTimes:
    """Thread-safe sums of seconds by stage, plus how many adds were timed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = {}
        self._count = 0

    @staticmethod
    def start() -> float:
        return time.perf_counter()

    def lap(self, stage: str, since: float) -> float:
        """Add the time since ``since`` to ``stage``; returns now (the next lap's start)."""
        now = time.perf_counter()
        with self._lock:
            self._seconds[stage] = self._seconds.get(stage, 0.0) + (now - since)
        return now

    def count(self) -> None:
        with self._lock:
            self._count += 1

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {"count": float(self._count), **{f"{k}_s": round(v, 6) for k, v in self._seconds.items()}}
