"""From how many rows prefill should leave the packed low-bit kernel for dequantize + bf16 matmul,
measured on this CPU.

The packed kernels (``_weight_int4pack_mm_for_cpu``, ``_weight_int8pack_mm``) cost about the same
per row however many rows come. Dequantizing a weight to bf16 costs a fixed amount per call, and
after that a bf16 matmul is cheap per row, but only where the CPU does bf16 natively. So the
crossover depends on the machine. On the AMX machine of November, int4 switched at 128 rows. On an
AVX512-BF16 CPU without AMX (2026-12-03), a whole-model int4 prefill of 256 rows took 405 ms
through dequantization and 340 ms through the packed kernel; dequantization won only from about
380 rows. On AVX2, where bf16 matmuls are emulated, it may never win.

So when the engine loads, it times both paths on the linears of one of its own layers (their
sum is what a prefill pays per layer: small weights carry relatively more per-call overhead on
the dequantize path). It fits cost = a + b*rows to each path from two row counts and switches
where the lines cross. This is done once per process for each set of shapes and thread count. A
wrong guess on a noisy machine only picks the slower path, since both paths compute the same
product.

The result is also written to a small JSON file per machine (``memo``, keyed by the shapes, the
thread count, torch's version, the CPU's flags and whether the C dequantizer runs), so that later
loads on the same machine skip the probe: its 0.1-0.2 s, and the ~10 MiB of oneDNN kernels and
scratch that its matmuls bring in at load rather than at the first long prefill. Only a
measurement taken while the load average is below the core count is kept.

Usage: ``rows = crossover_rows([block.wqkv, block.wo, block.w13, block.w2], memo=path)``.
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
from typing import Protocol

import torch

from inference.native import cpu_flags

log = logging.getLogger(__name__)

# measured near the crossover (tens of rows with the C dequantizer) rather than extrapolated to it
# from 128-512, which is where chat turns and blend recomputes fall as well
PROBE_ROWS = (32, 256)
MIN_ROWS, MAX_ROWS = 16, 1 << 16
_known: dict[tuple[object, ...], int] = {}
_lock = threading.Lock()


class PackedLinear(Protocol):
    """What the probe needs of Int4Linear / Int8Linear."""

    def packed_mm(self, x2: torch.Tensor) -> torch.Tensor: ...

    def dequant_mm(self, x2: torch.Tensor) -> torch.Tensor: ...

    def dequantize_shape(self) -> tuple[int, int]: ...


def crossover_rows(layer: Sequence[PackedLinear], memo: Path | None = None) -> int:
    """Rows from which dequantize + bf16 matmul beats the packed kernels over ``layer``'s linears,
    at the current torch thread count; read from / written to ``memo`` when given."""
    key = (*((type(lin).__name__, *lin.dequantize_shape(), getattr(lin, "native", None) is not None)
             for lin in layer), torch.get_num_threads())
    with _lock:  # engines loading on two threads measure once, not against each other
        if key not in _known:
            memo_key = _memo_key(key)
            known = _read_memo(memo).get(memo_key) if memo is not None else None
            _known[key] = known if isinstance(known, int) else _measure(layer)
            if memo is not None and known is None and _quiet():
                _write_memo(memo, memo_key, _known[key])
        return _known[key]


def _quiet() -> bool:
    """Whether the machine was quiet enough for the measurement to be kept: timings taken while
    other processes hold the cores would pin a wrong crossover for every later load."""
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
        log.warning("could not record the prefill crossover in %s: %s", path, e)


def _measure(layer: Sequence[PackedLinear]) -> int:
    packed, dequant = [], []
    for rows in PROBE_ROWS:
        xs = [torch.randn(rows, lin.dequantize_shape()[1], generator=torch.Generator().manual_seed(rows))
              .to(torch.bfloat16) for lin in layer]
        packed.append(_best_ms(lambda xs=xs: [lin.packed_mm(x) for lin, x in zip(layer, xs, strict=True)]))
        dequant.append(_best_ms(lambda xs=xs: [lin.dequant_mm(x) for lin, x in zip(layer, xs, strict=True)]))
    return crossing(PROBE_ROWS, packed, dequant)


def crossing(rows: tuple[int, int], packed_ms: Sequence[float], dequant_ms: Sequence[float]) -> int:
    """Where the line through ``dequant_ms`` drops below the line through ``packed_ms`` (both
    timed at the two ``rows``), clamped to [MIN_ROWS, MAX_ROWS]."""
    r1, r2 = rows
    slope_p = (packed_ms[1] - packed_ms[0]) / (r2 - r1)
    slope_d = (dequant_ms[1] - dequant_ms[0]) / (r2 - r1)
    if slope_p <= slope_d:
        return MAX_ROWS  # dequantizing never catches up
    fixed_p, fixed_d = packed_ms[0] - slope_p * r1, dequant_ms[0] - slope_d * r1
    at = (fixed_d - fixed_p) / (slope_p - slope_d)
    return int(min(MAX_ROWS, max(MIN_ROWS, math.ceil(at))))


def _best_ms(fn: Callable[[], object], reps: int = 2) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000
