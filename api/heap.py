"""The server's startup objects, kept out of the garbage collector's full passes.

Why: a full (generation 2) collection visits every tracked object, and a server that has loaded
MiniLM and the local engine holds ~600k of them (modules, model and tokenizer objects, torch's
Python side), which live as long as the process. Measured on the AVX2 EPYC: one full collection
of such a process took 335 ms, with every thread of the process stopped behind the GIL; one in
200 searches at 100k notes met such a pass (docs/benchmarks.md, issue 2). Frozen, the same
collection visits only what was made after startup.
"""
from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect the garbage there is, then move every object alive now to the permanent generation
    (collected first, so that no garbage is frozen with them). Returns how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def thaw_startup_objects() -> None:
    """Give the frozen objects back to the collector (at shutdown: an app started and stopped
    inside a longer-lived process, e.g. a test run, must not keep its garbage forever)."""
    gc.unfreeze()
