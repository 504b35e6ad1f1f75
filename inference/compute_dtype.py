"""The dtype the quantized modes compute in on this CPU: bf16 where the CPU does bf16 arithmetic
natively, fp32 elsewhere.

The int4/int8 prefill dequantizes each weight for one dense matmul, and prefill attention runs in
the same dtype. On the AVX512-BF16 and AMX machines bf16 is the fast choice (``inference.linear``).
Without those instructions torch emulates bf16, and it is several times slower than fp32. Measured
on an AMD EPYC with AVX2 only (2026-12-03, torch 2.13, 2 threads, idle): a 512x576 @ 576x1536
matmul took 10.0 ms in fp32, 66.2 ms in bf16 and 56.4 ms in fp16.

Only the x86 flags measured here turn bf16 on. Other CPUs (AVX2, ARM) get fp32, which is never
wrong, only possibly slower. The packed decode kernels take bf16 activations whatever this says
(``Int4Linear.packed_mm``).

Usage: ``act = compute_dtype()``; ``LocalEngine(compute_dtype=torch.float32)`` overrides it;
``LocalEngine(compute_dtype=NAMES["fp32"])`` from a command-line choice.
"""
from __future__ import annotations

import torch

from inference.native import cpu_flags

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
NAMES = {"auto": None, "bf16": torch.bfloat16, "fp32": torch.float32}  # None: this CPU's choice


def native_bf16(flags: str | None = None) -> bool:
    """True when ``flags`` (default: this CPU's /proc/cpuinfo flags line) name a bf16 instruction set."""
    return not BF16_FLAGS.isdisjoint((cpu_flags() if flags is None else flags).split())


def compute_dtype(flags: str | None = None) -> torch.dtype:
    """bf16 on a CPU with native bf16, else fp32."""
    return torch.bfloat16 if native_bf16(flags) else torch.float32
