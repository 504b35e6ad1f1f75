"""Long-lived objects kept out of the garbage collector's full passes.

Why: a full (generation 2) collection visits every tracked object, and a process that has loaded
MiniLM and the local engine holds ~600k of them (modules, model and tokenizer objects, torch's
Python side), which live as long as the process. Measured on the AVX2 EPYC: one full collection
of such a process took 335 ms, with every thread of the process stopped behind the GIL; one in
200 searches at 100k notes met such a pass (docs/benchmarks.md, issue 2). Frozen, the same
collection visits only what was made after the freeze.

Two holders: the server for its whole life (``freeze_startup_objects``, collecting first so that
no garbage is frozen), and a bulk ingest for its duration (``heap_frozen``). An ingest into a
store of 100k notes, in a process with MiniLM loaded, met a full pass every ~3,000 notes, 0.3-0.4 s
of CPU each, while the embedding workers waited for the GIL (docs/benchmarks.md, issue 2). ``gc.freeze`` and
``gc.unfreeze`` act on the whole process, so holders are counted: the first one freezes, the last
one thaws, and an ingest inside a serving process leaves the server's freeze alone. A heap that
someone else froze (a pre-fork server's master process, say) is left as it is: neither frozen
further nor thawed by us.

A bulk ingest that is the only holder also freezes again after each batch (``refreeze``). Whatever
an ingest keeps (the notes it returns, the index's new entries) otherwise piles up in the oldest
generation, and each full pass, due whenever that pile grew by a quarter, visits all of it again:
in a 20k-note ``add_many`` at 100k notes, 21-22 full passes took 0.06-0.07 ms of CPU a note, and
the store's CPU a note fell from 0.63-0.70 to 0.50-0.61 ms when each batch was frozen
(bench/store_cpu.py, docs/benchmarks.md, issue 2). Frozen batch by batch, no full pass is due.
Inside a server (two holders) nothing more is frozen: requests' objects must stay collectable.
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_ours = False  # whether the current freeze is ours to thaw


def freeze_startup_objects() -> int:
    """Collect the garbage there is, then move every object alive now to the permanent generation
    (collected first, so that no garbage is frozen with them). Returns how many are frozen."""
    gc.collect()
    _hold()
    return gc.get_freeze_count()


def thaw_startup_objects() -> None:
    """Give the frozen objects back to the collector (at shutdown: an app started and stopped
    inside a longer-lived process, e.g. a test run, must not keep its garbage forever)."""
    _release()


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Keep the objects alive at entry out of full collections until exit (unless another holder
    still needs them frozen). No collection first: a full pass is what this avoids, and garbage
    frozen with the rest is collected after the thaw."""
    _hold()
    try:
        yield
    finally:
        _release()


def refreeze() -> None:
    """Move every object made since the freeze to the permanent generation too, when the only
    holder is a ``heap_frozen`` of ours. Cheap (the collector's lists are spliced, not walked).
    Garbage cycles frozen with them wait for the thaw; an ingest makes few (tens per thousand
    notes, measured)."""
    with _lock:
        if _holders == 1 and _ours:
            gc.freeze()


def _hold() -> None:
    global _holders, _ours
    with _lock:
        if _holders == 0:
            _ours = gc.get_freeze_count() == 0
            if _ours:
                gc.freeze()
        _holders += 1


def _release() -> None:
    global _holders
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0 and _ours:
            gc.unfreeze()
