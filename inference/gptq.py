"""Output-error-aware rounding of a weight to int8 per output channel (the GPTQ method).

Usage: ``h = input_hessian(x)`` over calibration inputs x: [tokens, k]; then
``q, scales = gptq_int8(w, h)`` -> int8 [n, k] and float32 [n], the same format as
:func:`inference.quant.quantize_int8` (w ~= q * scales[:, None]), read by the same kernel.

Round-to-nearest makes each weight's error as small as it can be on its own; what the model sees
is the error of the layer's output, ``(W - Q) X``. GPTQ (Frantar et al., 2022) quantizes one
input column at a time and moves each column's rounding error onto the columns not yet
quantized, weighted by the inverse of H = X^T X, so that errors cancel in the directions the
inputs actually take. The scales stay the per-row absmax / 127 of round-to-nearest; only the
rounding of each weight changes.
"""
from __future__ import annotations

import torch

INT8_MAX = 127


def input_hessian(x: torch.Tensor) -> torch.Tensor:
    """x: [tokens, k] inputs of a linear layer -> H = x^T x / tokens, float64 [k, k]."""
    x = x.reshape(-1, x.shape[-1]).double()
    return x.t() @ x / max(x.shape[0], 1)


def absmax_scales(w: torch.Tensor) -> torch.Tensor:
    """Per-row symmetric int8 scale: max |w| / 127 (never 0). w: [n, k] -> float32 [n]."""
    return (w.abs().amax(dim=1).float() / INT8_MAX).clamp(min=1e-12)


def gptq_int8(w: torch.Tensor, h: torch.Tensor, block: int = 128,
              damp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """w: [n, k], h: [k, k] (see :func:`input_hessian`) -> (q int8 [n, k], scales float32 [n]).

    ``damp`` x mean(diag H) is added to the diagonal (H from a finite sample can be singular);
    ``block`` columns are updated at a time before the rest get the block's error in one matmul
    (the result is the same for any block size, only the speed changes).
    """
    n, k = w.shape
    assert h.shape == (k, k), f"hessian {tuple(h.shape)} does not match {k} input columns"
    scales = absmax_scales(w)
    work = w.double().clone()
    hinv = _inverse_cholesky_upper(h.double(), damp)
    q = torch.empty(n, k, dtype=torch.int8)
    s = scales.double()
    for b0 in range(0, k, block):
        b1 = min(b0 + block, k)
        wb, err = work[:, b0:b1], torch.empty(n, b1 - b0, dtype=torch.float64)
        for j in range(b1 - b0):
            col = wb[:, j]
            qc = torch.round(col / s).clamp_(-INT8_MAX, INT8_MAX)
            q[:, b0 + j] = qc.to(torch.int8)
            e = (col - qc * s) / hinv[b0 + j, b0 + j]
            wb[:, j:] -= torch.outer(e, hinv[b0 + j, b0 + j : b1])
            err[:, j] = e
        work[:, b1:] -= err @ hinv[b0:b1, b1:]
    return q, scales


def _inverse_cholesky_upper(h: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor of (H + damp * mean(diag H) * I)^-1: row i holds how column i's
    error spreads over the later columns."""
    h = h.clone()
    dead = torch.diagonal(h) <= 0  # inputs that were always 0: any weight there is free
    h[dead, dead] = 1.0
    h.diagonal().add_(damp * float(torch.diagonal(h).mean()))
    inv = torch.cholesky_inverse(torch.linalg.cholesky(h))
    return torch.linalg.cholesky(inv, upper=True)
