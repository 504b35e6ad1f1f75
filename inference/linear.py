"""Drop-in Linear modules: fp32 reference, int8 and int4 weight-only for torch's CPU kernels.

Usage: ``lin = make_linear([raw_q, raw_k, raw_v], "int4")``; ``y = lin(x)`` with x: [..., k].

Decode (a few rows) and prefill (many rows) take different paths, chosen by measurement on the
2-core AVX512-BF16/AMX machine (torch 2.13, 1536x576 weight):

    rows   fp32 matmul   bf16 matmul   int8pack_mm   int4pack_mm   dequant->bf16
       1     0.11 ms       0.12 ms       0.06 ms       0.06 ms   int8 0.3, int4 1.2 ms
      64     1.63 ms       0.59 ms       1.11 ms       1.12 ms
     512    11.5  ms       2.60 ms       9.38 ms       6.88 ms

and for a 3072x576 weight, packed kernel vs dequantize + bf16 matmul (machine shared):

    rows        16          32          64         128         512
    int8    0.97/1.62   2.16/2.00   2.83/1.32
    int4    0.40/2.16   0.79/2.51   1.56/2.73   3.24/3.26   12.7/9.9  ms

so below ``prefill_min_rows`` (int8: 32, int4: 128 there; the engine measures the crossover on
the CPU it runs on, see inference/prefill_path.py) the packed kernels run (memory-bound decode
reads 1-4 bits less per weight), and from there the weight is dequantized to bf16 for one AMX
matmul: prefill is compute-bound and the transient bf16 copy lives for one layer only, so
resident memory stays quantized. The packed kernels are fed bf16 activations: int8pack_mm with fp32 input takes a
~15x slower path. On a CPU without native bf16 the dequantized weight and its matmul are fp32
instead (``compute``, set by the model from inference/compute_dtype.py): there bf16 matmuls are
emulated and several times slower than fp32.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from inference.errors import InvalidParams
from inference.gguf_file import RawTensor
from inference.native import NativeKernels
from inference.quant import (
    BLOCK,
    DIRECT_INT4_TYPES,
    dequantize_gguf,
    gguf_to_int4,
    quantize_int4,
    quantize_int8,
)

QUANT_MODES = ("fp32", "int8", "int4")
INT4_GROUP = BLOCK
# GGUF types of 4 bits or fewer per weight: re-quantizing them to int4 loses little
LOW_BIT_TYPES = {"Q4_0", "Q4_1", "Q4_K", "Q3_K", "Q2_K", "IQ4_NL", "IQ4_XS", "IQ3_S", "IQ3_XXS", "IQ2_XS", "IQ2_S"}
_INT4_BLOCK_CANDIDATES = (64, 32)  # torch's CPU int4 packing: 64-row blocks on AVX512, 32 on AVX2


class FloatLinear(nn.Module):
    """fp32 reference: y = x @ W^T with the dequantized GGUF weight."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.float().contiguous(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.float(), self.weight)


class Int8Linear(nn.Module):
    """Weight-only int8, symmetric per output channel; returns bf16 (packed kernel) or ``compute``."""

    prefill_min_rows = 32  # from here dequantize + bf16 matmul beats the kernel (module docstring)
    compute = torch.bfloat16  # the dequantized path's dtype (inference.compute_dtype)

    def __init__(self, q: torch.Tensor, scales: torch.Tensor):
        super().__init__()
        self.register_buffer("q", q.to(torch.int8).contiguous())  # [n, k]
        self.register_buffer("scales", scales.to(torch.bfloat16).contiguous())  # [n]

    def dequantize(self, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        """[n, k] in ``dtype``: bf16 rounds q * scale once; fp32 holds it exactly."""
        return self.q.to(dtype) * self.scales[:, None].to(dtype)

    def dequantize_shape(self) -> tuple[int, int]:
        return int(self.q.shape[0]), int(self.q.shape[1])

    def packed_mm(self, x2: torch.Tensor) -> torch.Tensor:
        """x2: [rows, k] through torch's int8 kernel (in bf16) -> bf16 [rows, n]."""
        return torch.ops.aten._weight_int8pack_mm(x2.to(torch.bfloat16), self.q, self.scales)

    @staticmethod
    def gemv_ready() -> bool:
        """int8 has no C kernel: ``packed_mm`` is always torch's (see Int4Linear.gemv_ready)."""
        return False

    def dequant_mm(self, x2: torch.Tensor) -> torch.Tensor:
        """The prefill path: the weight dequantized to ``compute`` for one matmul, then dropped.

        Tried (2026-12-03): the matmul on the codes, which are exact in bf16, with the scales applied
        afterwards, so that no weight is rounded. Top-1 against fp32 moved by -1 to +4 of 600
        positions on three texts, and perplexity by -0.4% to +0.6%: noise. The bf16 rounding of
        q * scale is not what costs int8 its agreement."""
        return x2.to(self.compute) @ self.dequantize(self.compute).t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead, k = x.shape[:-1], x.shape[-1]
        x2 = x.reshape(-1, k)
        y = self.packed_mm(x2) if x2.shape[0] < self.prefill_min_rows else self.dequant_mm(x2)
        return y.reshape(*lead, -1)


class Int4Linear(nn.Module):
    """Weight-only int4, asymmetric per group of 32 input columns, packed for the CPU kernel."""

    prefill_min_rows = 128
    compute = torch.bfloat16  # the dequantized path's dtype (inference.compute_dtype)

    def __init__(self, q: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, group: int = INT4_GROUP):
        super().__init__()
        n, k = q.shape
        self.n, self.k, self.group = n, k, group
        self.register_buffer("packed", pack_int4(q))  # [n, k/2] uint8, kernel layout
        # scales_and_zeros: [k/group, n, 2] bf16, the kernel's expected layout
        sz = torch.stack([scales.t(), zeros.t()], dim=-1).to(torch.bfloat16).contiguous()
        self.register_buffer("scales_and_zeros", sz)

    def dequantize_shape(self) -> tuple[int, int]:
        return self.n, self.k

    native: NativeKernels | None = None  # the C dequantizer (inference.native), set by the model

    def dequantize(self, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        """[n, k] in ``dtype`` (bf16, or fp32 unrounded): the prefill path's transient weight, from
        the C kernel when it is loaded (the same bits, ~4x faster), else from PyTorch."""
        block = int4_block_rows()
        if self.native is not None and self.n % block == 0:
            return self.native.int4_dequant(self.packed, self.scales_and_zeros, self.n, self.k, block,
                                            self.group, torch.get_num_threads(), dtype)
        return self.dequantize_torch(dtype)

    def dequantize_torch(self, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        """[n, k] in ``dtype`` computed in PyTorch (the reference for the C kernel).

        The affine step runs in fp32 in place: torch's bf16 addcmul with a broadcast scale
        measured 4.8 ms for a 3072x576 weight, the fp32 version 0.8 ms including conversions.
        (q - 8) * s is exact in fp32 (a 4-bit integer times a bf16), so adding z rounds once, as
        the C kernel does.
        """
        assert self.n % int4_block_rows() == 0, "the unpacking below assumes whole row blocks"
        q = unpack_int4(self.packed, self.n, self.k).view(self.n, self.k // self.group, self.group)
        s = self.scales_and_zeros[..., 0].float()  # [k/group, n]
        z = self.scales_and_zeros[..., 1].float()
        w = q.float().sub_(8).mul_(s.t().unsqueeze(-1)).add_(z.t().unsqueeze(-1))  # [n, k/group, group]
        return w.to(dtype).view(self.n, self.k)

    def packed_mm(self, x2: torch.Tensor) -> torch.Tensor:
        """x2: [rows, k] -> [rows, n] straight from the packed weight: through the C kernel in fp32 when
        the model computes in fp32 and this CPU has it (AVX2, where torch's kernel emulates bf16),
        else through torch's int4 kernel in bf16."""
        if self.gemv_ready() and x2.shape[0] > 0:
            return self.native.int4_gemv(x2, self.packed, self.scales_and_zeros,  # type: ignore[union-attr]
                                         self.n, self.k, int4_block_rows(), self.group)
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x2.to(torch.bfloat16), self.packed, self.group,
                                                          self.scales_and_zeros)

    def gemv_ready(self) -> bool:
        """True when ``packed_mm`` runs the C kernel (fp32 compute, a build with it, 32-row blocks)."""
        return (self.compute == torch.float32 and self.native is not None and self.native.has_gemv
                and int4_block_rows() == 32 and self.n % 32 == 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.k)
        if x2.shape[0] < self.prefill_min_rows or self.n % int4_block_rows():
            y = self.packed_mm(x2)
        else:
            y = self.dequant_mm(x2)
        return y.reshape(*lead, -1)

    def dequant_mm(self, x2: torch.Tensor) -> torch.Tensor:
        """The prefill path: the weight dequantized to ``compute`` for one matmul, then dropped."""
        return x2.to(self.compute) @ self.dequantize(self.compute).t()


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """q: uint8 [n, k] codes 0..15 -> uint8 [n, k/2] in torch's CPU int4pack layout."""
    return torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.to(torch.int32).contiguous(), 1)


@functools.cache
def int4_block_rows() -> int:
    """Rows per block of torch's int4pack layout on this CPU, found by packing a probe matrix.

    torch sizes the block from its vector width (4 x floats per vector): 64 rows on AVX512, 32 on
    AVX2, so a layout assumed from one machine unpacks garbage on the other.
    """
    # random rows (fixed seed): any row permutation a wrong block size makes shows as a mismatch
    probe = torch.randint(0, 16, (128, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    packed = pack_int4(probe)
    for block in _INT4_BLOCK_CANDIDATES:
        if torch.equal(_unpack(packed, 128, 32, block), probe):
            return block
    raise RuntimeError(f"torch's int4pack layout is none of the known row blocks {_INT4_BLOCK_CANDIDATES}")


def unpack_int4(packed: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """Inverse of :func:`pack_int4` (n a multiple of :func:`int4_block_rows`) -> uint8 [n, k].

    Layout (checked by a test against the kernel): per block of B output rows (B = 64 on AVX512,
    32 on AVX2), per input column, B/2 bytes whose low nibbles are rows 0..B/2-1 of the block and
    high nibbles rows B/2..B-1.
    """
    return _unpack(packed, n, k, int4_block_rows())


def _unpack(packed: torch.Tensor, n: int, k: int, block: int) -> torch.Tensor:
    """:func:`unpack_int4` for a given row block, writing both nibble halves straight into place."""
    b = packed.view(n // block, k, block // 2)  # [nb, k, B/2]
    out = torch.empty(n // block, block, k, dtype=torch.uint8)  # [nb, B, k]
    out[:, : block // 2].copy_((b & 0x0F).transpose(1, 2))
    out[:, block // 2 :].copy_((b >> 4).transpose(1, 2))
    return out.view(n, k)


def make_linear(raws: Sequence[RawTensor], quant: str) -> nn.Module:
    """One Linear over GGUF tensors fused along the output dimension (e.g. q, k, v).

    int4 keeps Q4_0/Q4_1 codes exactly; other storage types are dequantized and re-quantized.
    Under int4, a fused matrix with any part stored above 4 bits (Q5+, Q8_0, F16, F32) becomes
    int8 instead: squeezing those to 4 bits would add error the file did not have.
    """
    if quant not in QUANT_MODES:
        raise InvalidParams(f"quant must be one of {QUANT_MODES}, got {quant!r}")
    types = {r.qtype for r in raws}
    if quant == "int4" and types <= set(DIRECT_INT4_TYPES):
        parts = [gguf_to_int4(r.data, r.qtype, r.shape) for r in raws]  # type: ignore[arg-type]
        return Int4Linear(*(torch.cat(p, dim=0) for p in zip(*parts)))
    w = torch.cat([dequantize_gguf(r.data, r.qtype, r.shape) for r in raws], dim=0)
    if quant == "int4" and not types <= LOW_BIT_TYPES:
        quant = "int8"
    return linear_from_float(w, quant)


def linear_from_float(w: torch.Tensor, quant: str) -> nn.Module:
    """A float weight [n, k] -> the Linear for ``quant``. Usage: ``linear_from_float(w, "int8")``."""
    if quant not in QUANT_MODES:
        raise InvalidParams(f"quant must be one of {QUANT_MODES}, got {quant!r}")
    if quant == "fp32":
        return FloatLinear(w)
    if quant == "int4" and w.shape[1] % INT4_GROUP == 0:
        return Int4Linear(*quantize_int4(w, INT4_GROUP))
    return Int8Linear(*quantize_int8(w))
