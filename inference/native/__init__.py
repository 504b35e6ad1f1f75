"""A small C kernel for the prefill path, compiled on first use with the machine's C compiler.

Usage::

    kernels = load_kernels()                 # None when no compiler works: callers stay in PyTorch
    w = kernels.int4_dequant(packed, scales_zeros, n, k, block, group)   # bf16 [n, k]
    y = kernels.int4_gemv(x2, packed, scales_zeros, n, k, block, group)  # fp32 x2 @ W^T (AVX2 builds)

Why C: a prefill dequantizes every int4 weight to bf16 for one matmul. In eager PyTorch that is
five or six passes over the weight (2.2 ms for a 3072x576 weight on the AMX machine, where the
bf16 matmul of 290 rows that follows takes 0.6 ms: ~200 ms of every prefill of SmolLM2). One pass
in C writes the same bits in the same layout, 0.63 ms (the tests compare them with the PyTorch
path, weights and a real prefill's logits). On CPUs without native bf16, decode's few rows are
multiplied straight from the packed weights in fp32 by a second kernel (int4_gemv.c), where
torch's int4 kernel emulates bf16.

The shared library is built once per machine and CPU into ``cache_dir`` (inference/native/build.py).
Any failure (no compiler, a build error, a library that will not load) is logged once and gives
``None``.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from inference.errors import InvalidParams
from inference.native.build import build_library, cpu_flags, default_machine_cache

__all__ = ["NativeKernels", "SPLIT_MIN_BYTES", "build_library", "cpu_flags", "default_machine_cache", "load_kernels"]

log = logging.getLogger(__name__)
SOURCES = tuple(Path(__file__).with_name(name) for name in ("int4_dequant.c", "int4_gemv.c"))
# a second thread pays off only for large weights (the output head): for a 3072x576 weight its
# wake-up cost more than it saved (0.45 against 0.41 ms), for 49152x576 it halved 31 ms
SPLIT_MIN_BYTES = 16 << 20


class NativeKernels:
    """The loaded library; each call may split its row blocks over ``threads`` threads."""

    def __init__(self, lib: ctypes.CDLL, path: Path):
        self.path = path
        self._fns = {torch.bfloat16: lib.engram_int4_dequant, torch.float32: lib.engram_int4_dequant_f32}
        for fn in self._fns.values():
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 6
        self._gemv = lib.engram_int4_gemv_f32
        self._gemv.restype = ctypes.c_int
        self._gemv.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 5
        # -2: compiled without AVX2/FMA (the stub); -1: the shape check refused block 0, so it is there
        self.has_gemv = self._gemv(None, None, None, None, 1, 32, 32, 0, 32) == -1
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def int4_dequant(self, packed: torch.Tensor, scales_zeros: torch.Tensor, n: int, k: int, block: int,
                     group: int, threads: int = 1, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        """packed: uint8 [n, k/2] in torch's int4pack layout; scales_zeros: bf16 [k/group, n, 2].
        Returns W as ``dtype`` [n, k] (bf16, or fp32 unrounded). ctypes drops the GIL during the
        call, so ``threads`` > 1 runs the halves of the blocks at once."""
        assert packed.dtype == torch.uint8 and packed.is_contiguous()
        assert scales_zeros.dtype == torch.bfloat16 and scales_zeros.is_contiguous()
        fn = self._fns[dtype]
        out = torch.empty(n, k, dtype=dtype)
        blocks = n // block
        args = (packed.data_ptr(), scales_zeros.data_ptr(), out.data_ptr(), n, k, block, group)
        if threads > 1 and blocks > 1 and out.numel() * out.element_size() >= SPLIT_MIN_BYTES:
            mid = blocks // 2
            other = self._executor().submit(fn, *args, mid, blocks)
            rc = [fn(*args, 0, mid), other.result()]
        else:
            rc = [fn(*args, 0, blocks)]
        if any(rc):
            raise InvalidParams(f"int4 dequant kernel refused the shape n={n} k={k} block={block} group={group}")
        return out

    def int4_gemv(self, x2: torch.Tensor, packed: torch.Tensor, scales_zeros: torch.Tensor, n: int, k: int,
                  block: int, group: int) -> torch.Tensor:
        """fp32 [m, k] @ W^T -> fp32 [m, n] straight from the int4pack layout (AVX2 + FMA, 32-row
        blocks; ``has_gemv`` says whether this build has it). For decode's few rows."""
        assert packed.dtype == torch.uint8 and packed.is_contiguous()
        assert scales_zeros.dtype == torch.bfloat16 and scales_zeros.is_contiguous()
        x2 = x2.to(torch.float32).contiguous()
        out = torch.empty(x2.shape[0], n, dtype=torch.float32)
        rc = self._gemv(packed.data_ptr(), scales_zeros.data_ptr(), x2.data_ptr(), out.data_ptr(), x2.shape[0], n, k,
                        block, group)
        if rc:
            raise InvalidParams(f"int4 gemv kernel refused m={x2.shape[0]} n={n} k={k} block={block} group={group} "
                                f"({rc})")
        return out

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="engram-dequant")
            return self._pool


@functools.cache
def load_kernels(cache_dir: str | Path | None = None) -> NativeKernels | None:
    """Build (once per machine) into ``cache_dir`` (default ``~/.cache/engram/kernels``) and load
    the kernels; None if that is not possible here."""
    try:
        folder = Path(cache_dir) if cache_dir is not None else default_machine_cache() / "kernels"
        path = build_library(SOURCES, folder, "int4_dequant")
        return NativeKernels(ctypes.CDLL(str(path)), path)
    except (OSError, subprocess.SubprocessError, RuntimeError) as e:
        log.warning("native int4 dequantization unavailable, prefill stays in PyTorch: %s", e)
        return None
