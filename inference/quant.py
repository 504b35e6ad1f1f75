"""Pure quantize/dequantize functions: GGUF blocks in, torch tensors out.

Usage: ``w = dequantize_gguf(raw_rows, "Q4_1", (n, k))`` or
``q, scales, zeros = gguf_to_int4(raw_rows, "Q4_1", (n, k))``.

GGUF block formats (32 weights per block, scales stored as fp16):
    Q8_0: [d:f16][q:int8 x32]            w = d * q
    Q4_0: [d:f16][qs:u8 x16]             w = d * (q - 8)
    Q4_1: [d:f16][m:f16][qs:u8 x16]      w = d * q + m
In Q4_*, byte j of qs holds weight j in its low nibble and weight j + 16 in its high nibble.

The int4 convention is torch's CPU int4 kernels': q in [0, 15], w = (q - 8) * scale + zero per
group of input columns. int8 is symmetric per output channel: w = q * scale[row].
"""
from __future__ import annotations

import numpy as np
import torch

BLOCK = 32
BLOCK_BYTES = {"Q8_0": 34, "Q4_0": 18, "Q4_1": 20}
DIRECT_INT4_TYPES = ("Q4_0", "Q4_1")


def _blocks(raw: np.ndarray | torch.Tensor, qtype: str, shape: tuple[int, int]) -> torch.Tensor:
    """Raw rows -> uint8 [rows, blocks_per_row, bytes_per_block]."""
    n, k = shape
    assert k % BLOCK == 0, f"{qtype} rows must be a multiple of {BLOCK} wide"
    # a copy: the file mapping is read-only, and torch must not alias memory it cannot write
    t = torch.from_numpy(np.array(raw, dtype=np.uint8)) if isinstance(raw, np.ndarray) else raw
    return t.view(torch.uint8).reshape(n, k // BLOCK, BLOCK_BYTES[qtype])


def _f16(b: torch.Tensor, offset: int) -> torch.Tensor:
    """fp16 field at byte ``offset`` of every block -> float32 [rows, blocks, 1]."""
    return b[..., offset : offset + 2].contiguous().view(torch.float16).float()


def _nibbles(qs: torch.Tensor) -> torch.Tensor:
    """qs: [rows, blocks, 16] uint8 -> [rows, blocks, 32] uint8 in weight order (low nibbles first)."""
    return torch.cat([qs & 0x0F, qs >> 4], dim=-1)


def dequantize_q8_0(raw: np.ndarray | torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Q8_0 rows -> float32 [n, k]. Usage: ``dequantize_q8_0(t.data, t.shape)``."""
    b = _blocks(raw, "Q8_0", shape)
    q = b[..., 2:].contiguous().view(torch.int8).float()
    return (_f16(b, 0) * q).reshape(shape)


def dequantize_q4_0(raw: np.ndarray | torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Q4_0 rows -> float32 [n, k]."""
    b = _blocks(raw, "Q4_0", shape)
    q = _nibbles(b[..., 2:]).float()
    return (_f16(b, 0) * (q - 8)).reshape(shape)


def dequantize_q4_1(raw: np.ndarray | torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Q4_1 rows -> float32 [n, k]."""
    b = _blocks(raw, "Q4_1", shape)
    q = _nibbles(b[..., 4:]).float()
    return (_f16(b, 0) * q + _f16(b, 2)).reshape(shape)


def dequantize_gguf(raw: np.ndarray, qtype: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Any GGUF tensor -> float32 with ``shape``. Usage: ``dequantize_gguf(t.data, t.qtype, t.shape)``.

    Q8_0/Q4_0/Q4_1 are decoded here; float types are copied; other types (K-quants...) go
    through the ``gguf`` package's reference dequantizer.
    """
    if qtype in ("F32", "F16"):
        return torch.from_numpy(np.asarray(raw, dtype=np.float32).reshape(shape).copy())
    decoders = {"Q8_0": dequantize_q8_0, "Q4_0": dequantize_q4_0, "Q4_1": dequantize_q4_1}
    if qtype in decoders:
        assert len(shape) == 2
        return decoders[qtype](raw, shape)  # type: ignore[arg-type]
    import gguf

    out = gguf.quants.dequantize(np.asarray(raw), gguf.GGMLQuantizationType[qtype])
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).reshape(shape)


def gguf_to_int4(
    raw: np.ndarray | torch.Tensor, qtype: str, shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q4_0/Q4_1 blocks -> (q uint8 [n, k] in 0..15, scales [n, k/32], zeros [n, k/32]) float32.

    Lossless: the GGUF 4-bit codes are kept and only the affine form is rewritten
    (Q4_1: d*q + m = (q-8)*d + (m + 8d); Q4_0: d*(q-8) = (q-8)*d + 0).
    """
    assert qtype in DIRECT_INT4_TYPES, qtype
    b = _blocks(raw, qtype, shape)
    d = _f16(b, 0)[..., 0]
    if qtype == "Q4_1":
        q, zeros = _nibbles(b[..., 4:]), _f16(b, 2)[..., 0] + 8 * d
    else:
        q, zeros = _nibbles(b[..., 2:]), torch.zeros_like(d)
    return q.reshape(shape), d, zeros


def gguf_q8_0_codes(raw: np.ndarray | torch.Tensor, shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Q8_0 blocks -> (codes int8 [n, k], block scales float32 [n, k/32]), losslessly."""
    b = _blocks(raw, "Q8_0", shape)
    return b[..., 2:].contiguous().view(torch.int8).reshape(shape), _f16(b, 0)[..., 0]


def quantize_q8_0(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per block of 32 (the Q8_0 scheme) for tables stored in other formats."""
    n, k = w.shape
    g = w.float().reshape(n, k // BLOCK, BLOCK)
    scales = g.abs().amax(dim=-1).clamp(min=1e-12) / 127.0
    q = torch.round(g / scales[..., None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(n, k), scales


def dequantize_blocks8(codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """(codes [..., k] int8, block scales [..., k/32]) -> float32 [..., k]."""
    g = codes.float().unflatten(-1, (-1, BLOCK))
    return (g * scales[..., None]).flatten(-2)


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8. w: [n, k] -> (q int8 [n, k], scales float32 [n])."""
    scales = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scales.float()


def dequantize_int8(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`quantize_int8`: -> float32 [n, k]."""
    return q.float() * scales.float()[:, None]


def quantize_int4(w: torch.Tensor, group: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int4 per group of ``group`` input columns (for weights not stored as Q4_*).

    w: [n, k] -> (q uint8 [n, k] in 0..15, scales [n, k/group], zeros [n, k/group]).
    """
    n, k = w.shape
    assert k % group == 0, "k must be a multiple of the group size"
    g = w.float().reshape(n, k // group, group)
    lo, hi = g.amin(dim=-1), g.amax(dim=-1)
    scales = ((hi - lo) / 15).clamp(min=1e-12)
    zeros = lo + 8 * scales  # so that q = 0 maps to the group minimum
    q = torch.round((g - lo[..., None]) / scales[..., None]).clamp(0, 15).to(torch.uint8)
    return q.reshape(n, k), scales, zeros


def dequantize_int4(q: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`quantize_int4` / :func:`gguf_to_int4`: -> float32 [n, k]."""
    n, k = q.shape
    groups = scales.shape[1]
    g = q.reshape(n, groups, k // groups).float() - 8
    return (g * scales[..., None] + zeros[..., None]).reshape(n, k)
