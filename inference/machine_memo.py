"""Settings measured on this machine at load, and remembered between processes.

Some of the engine's choices depend on the CPU rather than the model: from how many rows a prefill
dequantizes weights for a bf16 matmul (``inference.prefill_path``), from how many rows a forward
wakes the prefill threads (``inference.thread_rows``). Each is measured by a short probe the first
time a process needs it, once per process for each key, and written to a small JSON file per
machine (``memo``) so that later loads on the same machine skip the probe. The file's keys hash
torch's version, the machine and its CPU flags, so a copied home directory measures again. Only a
measurement taken while the load average is below the core count is kept: timings taken while
other processes hold the cores would pin a wrong setting for every later load.

Usage: ``rows = remembered(("threads", 2, 1, ...), memo_path, measure=lambda: probe())``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from inference.native import cpu_flags

log = logging.getLogger(__name__)

MIN_ROWS, MAX_ROWS = 16, 1 << 16
_known: dict[tuple[object, ...], int] = {}
_lock = threading.Lock()


def remembered(key: tuple[object, ...], memo: Path | None, measure: Callable[[], int]) -> int:
    """The value of ``key`` on this machine: known in this process, read from ``memo``, or
    ``measure()``d (and then written to ``memo`` when the machine was quiet)."""
    with _lock:  # engines loading on two threads measure once, not against each other
        if key not in _known:
            memo_key = _memo_key(key)
            known = _read_memo(memo).get(memo_key) if memo is not None else None
            _known[key] = known if isinstance(known, int) else measure()
            if memo is not None and known is None and _quiet():
                _write_memo(memo, memo_key, _known[key])
        return _known[key]


def crossing(rows: tuple[int, int], first_ms: Sequence[float], second_ms: Sequence[float]) -> int:
    """Where the line through ``second_ms`` drops below the line through ``first_ms`` (both timed
    at the two ``rows``), clamped to [MIN_ROWS, MAX_ROWS]."""
    r1, r2 = rows
    slope_1 = (first_ms[1] - first_ms[0]) / (r2 - r1)
    slope_2 = (second_ms[1] - second_ms[0]) / (r2 - r1)
    if slope_1 <= slope_2:
        return MAX_ROWS  # the second never catches up
    fixed_1, fixed_2 = first_ms[0] - slope_1 * r1, second_ms[0] - slope_2 * r1
    at = (fixed_2 - fixed_1) / (slope_1 - slope_2)
    return int(min(MAX_ROWS, max(MIN_ROWS, math.ceil(at))))


def best_ms(fn: Callable[[], object], reps: int = 2) -> float:
    """The fastest of ``reps`` timed calls after one untimed call (which allocates, picks kernels)."""
    fn()
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def _quiet() -> bool:
    try:
        return os.getloadavg()[0] < (os.cpu_count() or 1)
    except OSError:
        return False


def _memo_key(key: tuple[object, ...]) -> str:
    machine = hashlib.sha256(f"{torch.__version__}|{platform.machine()}|{cpu_flags()}".encode()).hexdigest()[:16]
    return f"{machine}|{key!r}"


def _read_memo(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: measure again
        return {}
    return data if isinstance(data, dict) else {}


def _write_memo(path: Path, key: str, rows: int) -> None:
    """Merge one entry in; written under a temporary name and renamed (concurrent loads)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_memo(path) | {key: rows}
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError as e:  # a read-only home only costs the probe at the next load
        log.warning("could not record a machine measurement in %s: %s", path, e)
