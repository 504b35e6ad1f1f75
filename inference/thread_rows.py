"""From how many rows a forward should run on the prefill threads rather than the decode threads,
measured on this CPU.

With ``OMP_WAIT_POLICY=PASSIVE`` torch's second thread sleeps between parallel regions, and a
forward runs ~25 of them per layer. Waking it costs a fixed amount per region; what it saves
grows with the rows. Where the two meet depends on how fast the CPU does the work of a row. On
the 2-core AMX machine (bf16 matmuls in tiles) one thread won up to ~400 rows after 300 kept
positions. On a 2-core AVX512-BF16 EPYC without AMX (2026-12-03) a row costs ~4x more and two
threads won from ~130 rows (265 rows: 590 against 710 ms).

So when the engine loads, it times one of its own layers at two row counts on each thread count
(~0.3 s), fits cost = a + b*rows to each and switches where the lines cross. The result is
remembered per machine (``inference.machine_memo``). A wrong guess on a noisy machine only picks
the slower thread count: a 300-row forward gave the same logits bit for bit on one thread and on
two (int4 and fp32, checked on the EPYC).

Usage: ``rows = wide_from_rows((2, 1), probe, workload=("int4", 576, ...), memo=path)``.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from inference.machine_memo import crossing, remembered

PROBE_ROWS = (64, 256)
# medians of interleaved runs: on a 2-core VM the best of 2 runs per thread count put the
# crossing anywhere from 56 rows to "never" (6 probes); medians of 5 interleaved gave 76-132
REPS = 5


def wide_from_rows(threads: tuple[int, int], probe: Callable[[int], object], workload: tuple[object, ...],
                   memo: Path | None = None) -> int:
    """Rows from which ``probe(rows)`` (one layer's forward over that many rows) is faster on
    ``threads[0]`` (prefill) than on ``threads[1]`` (decode) threads. ``workload`` names what the
    probe runs (quantization, shapes, paths), for the memo; read from / written to ``memo`` when
    given. Leaves torch's thread count as it found it."""
    return remembered(("threads", *threads, *workload), memo, lambda: _measure(threads, probe))


def _measure(threads: tuple[int, int], probe: Callable[[int], object]) -> int:
    saved = torch.get_num_threads()
    runs: dict[tuple[int, int], list[float]] = {(n, rows): [] for n in threads for rows in PROBE_ROWS}
    try:
        for n in threads:  # the first calls on a thread count allocate and pick kernels
            torch.set_num_threads(n)
            for rows in PROBE_ROWS:
                probe(rows)
        for _ in range(REPS):  # interleaved, so that a burst of noise hits both thread counts
            for rows in PROBE_ROWS:
                for n in threads:
                    torch.set_num_threads(n)
                    start = time.perf_counter()
                    probe(rows)
                    runs[(n, rows)].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(saved)
    med = {k: statistics.median(v) for k, v in runs.items()}
    return crossing(PROBE_ROWS, [med[(threads[1], r)] for r in PROBE_ROWS], [med[(threads[0], r)] for r in PROBE_ROWS])
