"""Token embedding and output head sharing one 8-bit table (SmolLM2 ties them).

Usage: ``emb = TokenTable.from_raw(raw_token_embd)``; ``h = emb.embed(tokens)``;
``logits = emb.logits(x)``.

The table is kept losslessly as Q8_0 codes (int8 + one scale per 32 values), which gives exact
embeddings and exact logit rows. The full-vocabulary matmul, the largest of a decode step, runs
on torch's int4 kernel over a re-quantized copy (+17 MiB for SmolLM2; 1.1 ms per token against
2.2 ms for int8). Its bf16 output is too coarse to rank near-tied tokens (measured with an int8
copy: top-1 agreement with fp32 fell from 0.98 to 0.945), so it only shortlists: the
``REFINE_TOP`` best candidates are recomputed exactly in fp32 from the Q8_0 codes. The ranking
that greedy decoding and most of the sampled mass depend on is exact; the far tail is int4.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inference.gguf_file import RawTensor
from inference.linear import Int4Linear
from inference.quant import (
    dequantize_blocks8,
    dequantize_gguf,
    gguf_q8_0_codes,
    quantize_int4,
    quantize_q8_0,
)

REFINE_TOP = 64


class TokenTable(nn.Module):
    """[V, D] table in Q8_0 form, with an int8 per-row copy for the fast logits matmul."""

    def __init__(self, codes: torch.Tensor, block_scales: torch.Tensor):
        super().__init__()
        self.register_buffer("codes", codes.contiguous())  # [V, D] int8
        # fp16, as Q8_0 stores them (exact for a Q8_0 file); products with them are fp32
        self.register_buffer("block_scales", block_scales.half().contiguous())  # [V, D/32]
        # groups of 32: groups of 64 saved 1.7 MiB and kept every top-1, but the coarser tail
        # raised perplexity by ~0.8% (int8 +3.2% against fp32 on the test's text)
        self.fast = Int4Linear(*quantize_int4(dequantize_blocks8(self.codes, self.block_scales)))

    @classmethod
    def from_raw(cls, raw: RawTensor) -> TokenTable:
        if raw.qtype == "Q8_0":
            return cls(*gguf_q8_0_codes(raw.data, raw.shape))  # type: ignore[arg-type]
        return cls(*quantize_q8_0(dequantize_gguf(raw.data, raw.qtype, raw.shape)))

    @classmethod
    def from_float(cls, w: torch.Tensor) -> TokenTable:
        return cls(*quantize_q8_0(w))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: [B, T] -> fp32 [B, T, D]."""
        return dequantize_blocks8(F.embedding(tokens, self.codes), self.block_scales[tokens])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, D] -> fp32 [B, T, V], exact for the REFINE_TOP largest entries of each row."""
        approx = self.fast(x).float()  # [B, T, V]
        top = approx.topk(REFINE_TOP, dim=-1).indices  # [B, T, R]
        rows = dequantize_blocks8(self.codes[top], self.block_scales[top])  # [B, T, R, D]
        exact = torch.einsum("btrd,btd->btr", rows, x.float())
        return approx.scatter_(-1, top, exact)


class Embedding(nn.Module):
    """Embedding lookup through a TokenTable (tied) or a plain fp32 matrix; with ``rotation``
    [dim, dim], rows come out in that basis (a model kept in rotated bases, inference.rotation)."""

    def __init__(self, table: TokenTable | None = None, weight: torch.Tensor | None = None,
                 rotation: torch.Tensor | None = None):
        super().__init__()
        self.table, self.weight = table, weight
        self.register_buffer("rotation", rotation)  # a buffer: counted with the model's tensors

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.table is not None:
            rows = self.table.embed(tokens)
        else:
            assert self.weight is not None
            rows = F.embedding(tokens, self.weight)
        return rows if self.rotation is None else rows @ self.rotation


class TiedHead(nn.Module):
    """The output head reading the embedding's TokenTable."""

    def __init__(self, table: TokenTable):
        super().__init__()
        self.table = table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table.logits(x)
