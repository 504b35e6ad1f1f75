"""A shorter GIL switch interval while a bulk ingest runs.

Why: ``add_many`` stores one batch on the calling thread (Python between SQLite calls, holding the
GIL most of the time) while another thread tokenises the next batch and hands it, 32 texts at a
time, to the embedding workers (retrieval/traced_encoder.py). Each handoff needs the GIL. A thread
that asks for it gets it only when the holder blocks or when the switch interval ends (5 ms by
default), so at 100k notes the workers ran out of work while the store held the GIL, and a core
idled. Measured on the 2-core AMX Xeon, 100k notes, segments of 2,560 notes alternating with the
raw embedder beside each (overhead against it): 5 ms 40.7 / 41.4 / 38.4 / 15.8% against 0.5 ms
25.2 / 24.3 / 29.0 / 1.3%; segments of 5,120: 5 ms 33.1 / 38.9 / 40.4%, 1 ms 34.0 / 28.0 / 33.6%,
0.5 ms 34.1 / 27.0 / 31.9%, 0.2 ms 37.7 / 26.8 / 46.5% (docs/benchmarks.md, issue 2).

The interval is process-wide, so holders are counted, as for the heap freeze (api/heap.py): the
first sets it, the last puts back what it found. An interval someone set shorter already is kept.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

INGEST_SWITCH_S = 0.0005

_lock = threading.Lock()
_holders = 0
_found = 0.0


@contextmanager
def quick_gil_handoff(interval: float = INGEST_SWITCH_S) -> Iterator[None]:
    """Switch interval at most ``interval`` seconds inside the block (restored by the last holder)."""
    _hold(interval)
    try:
        yield
    finally:
        _release()


def _hold(interval: float) -> None:
    global _holders, _found
    with _lock:
        if _holders == 0:
            _found = sys.getswitchinterval()
        if interval < sys.getswitchinterval():
            sys.setswitchinterval(interval)
        _holders += 1


def _release() -> None:
    global _holders
    with _lock:
        _holders -= 1
        if _holders == 0:
            sys.setswitchinterval(_found)
