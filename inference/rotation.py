"""Orthogonal changes of basis that make a model's weights easier to round to int8 (QuaRot's idea).

Usage::

    rot = Rotation.random(cfg, seed=0)
    w2 = rotate_weight(w, "w2", cfg, rot)            # the same layer in the rotated basis
    x2 = FfnRotation(rot)(x)                         # what w2 reads at run time

Why: the int8 engine keeps one scale per output row, while the GGUF file scales each block of 32
weights on its own. A row whose blocks differ in range loses its small blocks to the row's largest
value; that re-quantization is what costs int8 its top-1 agreement with fp32. An orthogonal basis
change spreads every row's energy over all its columns, so the row's maximum falls towards its
typical value and one scale per row fits it (the product x W^T is unchanged: (x Q)(W Q)^T).

Where each rotation lives (nothing changes for fp32 or int4):
- ``residual`` (dim x dim, random orthogonal): the residual stream is kept rotated. The layers that
  read it (wqkv, w13) take it on their input columns with the RMSNorm gain folded in (RMSNorm
  commutes with a rotation, its gain does not); the layers that write it (wo, w2) take it on their
  output rows. The embedding rotates its rows once, the output head unrotates once: two small
  matmuls per forward, not per layer.
- ``head`` (head_dim x head_dim, signed Hadamard): folded into the value rows of wqkv and the
  input columns of wo, per head (attention mixes positions, never value dimensions). Free at run
  time; the KV cache holds the rotated values.
- ``ffn_block`` with ``ffn_signs`` (signed block Hadamard over the SwiGLU output): SwiGLU is not
  linear, so w2's input is rotated at run time, in blocks of 64 (0.5 ms per 512-row layer in
  bf16 on one thread; a block of 512 cost 2 ms on two). The signs go into w13's up rows, which
  SwiGLU passes through (silu(g) * (u s) = (silu(g) u) s). 1/sqrt(64) is exact in bf16.

Measured with GPTQ codes (docs/benchmarks.md, 2026-12-05): the int8 engine's top-1 agreement with
fp32 over 3,600 held-out positions went from 0.971 to 0.983, and on the three 600-position texts
that earlier studies used from 0.977 / 0.958 / 0.955 to 0.992 / 0.973 / 0.977.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from inference.errors import InvalidParams, ModelLoadError
from inference.gguf_file import ModelConfig

FFN_BLOCK = 64  # the largest power of two that divides SmolLM2's 1,536; 1/8 is exact in bf16
FP32_BELOW_ROWS = 32  # w2's input rotation runs in fp32 below this many token rows (FfnRotation)
LAYERS = ("wqkv", "wo", "w13", "w2")
# the layers that read a normed residual, and the RMSNorm (a block buffer, a GGUF tensor) whose
# gain their rotated weights take in (input_basis)
NORM_OF = {"wqkv": "attn_norm", "w13": "ffn_norm"}


def hadamard(n: int) -> torch.Tensor:
    """Orthonormal Hadamard matrix of order ``n`` (a power of two), Sylvester's construction, fp64."""
    if n < 1 or n & (n - 1):
        raise InvalidParams(f"Hadamard order must be a power of two, got {n}")
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / math.sqrt(n)


def random_orthogonal(n: int, generator: torch.Generator) -> torch.Tensor:
    """Haar-random orthogonal matrix [n, n] fp64 (QR of a Gaussian, signs fixed by R's diagonal)."""
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def random_signs(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (n,), generator=generator).double() * 2 - 1


def power_of_two_block(n: int, cap: int) -> int:
    """The largest power of two <= cap that divides n."""
    b = 1
    while b * 2 <= cap and n % (b * 2) == 0:
        b *= 2
    return b


@dataclass(frozen=True)
class Rotation:
    """The bases a model's int8 codes were computed in. All fp64 as built; fp32 once stored."""

    residual: torch.Tensor  # [dim, dim]
    head: torch.Tensor  # [head_dim, head_dim]
    ffn_signs: torch.Tensor  # [ffn_dim] of +-1
    ffn_block: torch.Tensor  # [b, b], b divides ffn_dim

    @classmethod
    def random(cls, cfg: ModelConfig, seed: int = 0) -> Rotation:
        g = torch.Generator().manual_seed(seed)
        head = random_signs(cfg.head_dim, g)[:, None] * hadamard(power_of_two_block(cfg.head_dim, cfg.head_dim))
        if head.shape[0] != cfg.head_dim:  # a head size that is not a power of two: any orthogonal
            head = random_orthogonal(cfg.head_dim, g)
        return cls(residual=random_orthogonal(cfg.dim, g), head=head, ffn_signs=random_signs(cfg.ffn_dim, g),
                   ffn_block=hadamard(power_of_two_block(cfg.ffn_dim, FFN_BLOCK)))

    def check(self, cfg: ModelConfig) -> None:
        """Raise ModelLoadError unless the shapes fit ``cfg`` and every matrix is orthogonal."""
        b = self.ffn_block.shape[0]
        shapes_ok = (tuple(self.residual.shape) == (cfg.dim, cfg.dim)
                     and tuple(self.head.shape) == (cfg.head_dim, cfg.head_dim)
                     and tuple(self.ffn_signs.shape) == (cfg.ffn_dim,)
                     and self.ffn_block.shape == (b, b) and cfg.ffn_dim % b == 0)
        if not shapes_ok:
            raise ModelLoadError("the int8 codes' rotation does not fit this model's shapes")
        for name in ("residual", "head", "ffn_block"):
            m = getattr(self, name).double()
            if not torch.allclose(m @ m.t(), torch.eye(m.shape[0], dtype=torch.float64), atol=1e-5):
                raise ModelLoadError(f"the int8 codes' {name} rotation is not orthogonal")
        if not bool((self.ffn_signs.abs() == 1).all()):
            raise ModelLoadError("the int8 codes' ffn_signs are not all +-1")


class FfnRotation(nn.Module):
    """w2's input rotation at run time: x [..., ffn_dim] -> x blockdiag(H) (w13's up rows already
    carry the signs, see :func:`rotate_weight`), as one matmul of [rows * ffn_dim / b, b] by [b, b].

    Few rows (decode) go through fp32: a bf16 matmul of this size cost ~0.1 ms per layer in a
    decode step against ~0.02 ms (int8 decode 34-35 against 36-38 tokens/s). Many rows stay in
    their dtype: in bf16 the entries +-1/8 are exact, so only the result is rounded, once."""

    def __init__(self, rot: Rotation):
        super().__init__()
        self.block = rot.ffn_block.shape[0]
        self._tables = {torch.float32: rot.ffn_block.float().contiguous()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.block)
        if flat.shape[0] < FP32_BELOW_ROWS * (x.shape[-1] // self.block):
            return torch.mm(flat.float(), self._tables[torch.float32]).view(x.shape)  # the next Linear casts
        table = self._tables.get(x.dtype)
        if table is None:
            table = self._tables[x.dtype] = self._tables[torch.float32].to(x.dtype)
        return torch.mm(flat, table).view(x.shape)


def times_blocks(x: torch.Tensor, block: torch.Tensor) -> torch.Tensor:
    """x [..., k] @ blockdiag(block, ..., block) without building the [k, k] matrix."""
    return (x.unflatten(-1, (-1, block.shape[0])) @ block).flatten(-2)


def input_basis(attr: str, cfg: ModelConfig, rot: Rotation,
                gain: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(d [k], B): the layer's rotated input is x A with A = diag(d) blockdiag(B, ..., B), B orthogonal.

    wqkv/w13 read rms_norm(h) * gain; rotated, they read rms_norm(h R) = rms_norm(h) R, so
    d = 1 / gain and B = R. wo reads the attention output, rotated per head (d = 1, B = the head
    rotation); w2 the SwiGLU output (d = the signs, B = the Hadamard block).
    """
    if attr in NORM_OF:
        if gain is None:
            raise InvalidParams(f"{attr} reads a normed input: its RMSNorm gain is needed")
        if bool((gain == 0).any()):  # that input is always 0: its rotated statistics are unknowable
            raise ModelLoadError(f"{attr}'s RMSNorm gain has zeros: this model cannot be rotated")
        return 1 / gain.double(), rot.residual.double()
    if attr == "wo":  # one head rotation per query head
        return torch.ones(cfg.n_heads * cfg.head_dim, dtype=torch.float64), rot.head.double()
    if attr == "w2":
        return rot.ffn_signs.double(), rot.ffn_block.double()
    raise InvalidParams(f"unknown layer {attr!r}; expected one of {LAYERS}")


def rotate_weight(w: torch.Tensor, attr: str, cfg: ModelConfig, rot: Rotation,
                  gain: torch.Tensor | None = None) -> torch.Tensor:
    """W [n, k] -> L W A^-T (fp64): the same map in the rotated bases (y' = x' W'^T = (x W^T) L^T).

    A^-T = diag(1 / d) blockdiag(B) (B orthogonal). The output side L: wo and w2 write the
    residual stream (rotated: y R, so L = R^T); wqkv's value rows give v R_head per KV head; q and
    k rows stay (RoPE rotates pairs of their dimensions); w13's up rows take w2's input signs."""
    d, block = input_basis(attr, cfg, rot, gain)
    w = times_blocks(w.double() / d, block)
    if attr in ("wo", "w2"):
        return rot.residual.double().t() @ w
    if attr == "wqkv":
        qk = cfg.head_dim * (cfg.n_heads + cfg.n_kv_heads)
        v = rot.head.double().t() @ w[qk:].unflatten(0, (-1, cfg.head_dim))  # [H_kv, D, k]
        return torch.cat([w[:qk], v.flatten(0, 1)])
    # w13: silu(gate) * (up * s) = (silu(gate) * up) * s, so the up rows take w2's input signs
    # and the run time rotation is the Hadamard blocks alone
    return torch.cat([w[: cfg.ffn_dim], w[cfg.ffn_dim :] * rot.ffn_signs.double()[:, None]])


def rotate_hessian(h: torch.Tensor, attr: str, cfg: ModelConfig, rot: Rotation,
                   gain: torch.Tensor | None = None) -> torch.Tensor:
    """E[x^T x] [k, k] of the original inputs -> that of the rotated inputs x A: A^T H A."""
    d, block = input_basis(attr, cfg, rot, gain)
    ha = times_blocks(h.double() * d, block)  # H A
    return times_blocks(ha.t() * d, block).t()  # ((H A)^T A)^T = A^T H A
