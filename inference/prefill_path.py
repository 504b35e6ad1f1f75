"""From how many rows prefill should leave the packed low-bit kernel for dequantize + a dense
matmul (bf16, or fp32 on CPUs without native bf16: inference.compute_dtype), measured on this CPU.

The packed kernels (``_weight_int4pack_mm_for_cpu``, ``_weight_int8pack_mm``) cost about the same
per row however many rows come. Dequantizing a weight to bf16 costs a fixed amount per call, and
after that a bf16 matmul is cheap per row, but only where the CPU does bf16 natively. So the
crossover depends on the machine. On the AMX machine of November, int4 switched at 128 rows. On an
AVX512-BF16 CPU without AMX (2026-12-03), a whole-model int4 prefill of 256 rows took 405 ms
through dequantization and 340 ms through the packed kernel; dequantization won only from about
380 rows. On AVX2, where bf16 matmuls are emulated, the dequantized path computes in fp32.

So when the engine loads, it times both paths on the linears of one of its own layers (their
sum is what a prefill pays per layer: small weights carry relatively more per-call overhead on
the dequantize path). It fits cost = a + b*rows to each path from two row counts and switches
where the lines cross. This is done once per process for each set of shapes and thread count. A
wrong guess on a noisy machine only picks the slower path, since both paths compute the same
product.

The result is remembered per machine (``inference.machine_memo``, keyed by the shapes, the thread
count and whether the C dequantizer runs), so that later loads skip the probe: its 0.1-0.2 s, and
the ~10 MiB of oneDNN kernels and scratch that its matmuls bring in at load rather than at the
first long prefill.

Usage: ``rows = crossover_rows([block.wqkv, block.wo, block.w13, block.w2], memo=path)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from inference.machine_memo import best_ms, crossing, remembered

# measured near the crossover (tens of rows with the C dequantizer) rather than extrapolated to it
# from 128-512, which is where chat turns and blend recomputes fall as well
PROBE_ROWS = (32, 256)


class PackedLinear(Protocol):
    """What the probe needs of Int4Linear / Int8Linear."""

    compute: torch.dtype

    def packed_mm(self, x2: torch.Tensor) -> torch.Tensor: ...

    def dequant_mm(self, x2: torch.Tensor) -> torch.Tensor: ...

    def gemv_ready(self) -> bool: ...

    def dequantize_shape(self) -> tuple[int, int]: ...


def crossover_rows(layer: Sequence[PackedLinear], memo: Path | None = None) -> int:
    """Rows from which dequantize + a dense matmul beats the packed kernels over ``layer``'s linears,
    at the current torch thread count; read from / written to ``memo`` when given."""
    key = (*((type(lin).__name__, *lin.dequantize_shape(), getattr(lin, "native", None) is not None,
              str(lin.compute), "gemv" if lin.gemv_ready() else "aten")
             for lin in layer), torch.get_num_threads())
    return remembered(key, memo, lambda: _measure(layer))


def _measure(layer: Sequence[PackedLinear]) -> int:
    packed, dequant = [], []
    for rows in PROBE_ROWS:
        xs = [torch.randn(rows, lin.dequantize_shape()[1], generator=torch.Generator().manual_seed(rows))
              .to(lin.compute) for lin in layer]
        packed.append(best_ms(lambda xs=xs: [lin.packed_mm(x) for lin, x in zip(layer, xs, strict=True)]))
        dequant.append(best_ms(lambda xs=xs: [lin.dequant_mm(x) for lin, x in zip(layer, xs, strict=True)]))
    return crossing(PROBE_ROWS, packed, dequant)
