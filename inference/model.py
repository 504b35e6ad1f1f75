"""Llama decoder in plain PyTorch: RMSNorm, RoPE, grouped-query attention, SwiGLU.

Usage: ``model = Transformer.from_gguf(GGUFFile.open(path), quant="int4")``;
``logits = model(tokens, start=0, cache=cache)`` with tokens: [B, T] -> [B, 1, V].

Weights come straight from the GGUF file, whose Q/K rows are permuted by llama.cpp's converter so
that RoPE rotates adjacent pairs (x[2i], x[2i+1]); :func:`apply_rope` uses that convention, so the
file's weights are used as stored. The residual stream, norms, RoPE and the KV cache stay fp32;
the quantized modes feed bf16 into their matmuls and prefill attention (see ``inference.linear``),
or fp32 on a CPU without native bf16 (``inference.compute_dtype``).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from inference.compute_dtype import compute_dtype
from inference.errors import InvalidParams, ModelLoadError
from inference.gguf_file import GGUFFile, ModelConfig
from inference.int8_calibration import FUSED_PARTS, Int8Codes
from inference.kv_cache import KVCache
from inference.linear import (
    FloatLinear,
    Int4Linear,
    Int8Linear,
    linear_from_float,
    make_linear,
)
from inference.native import NativeKernels
from inference.output_head import Embedding, TiedHead, TokenTable
from inference.prefill_path import crossover_rows
from inference.quant import dequantize_gguf
from inference.rotation import NORM_OF, FfnRotation, Rotation, rotate_weight
from inference.thread_rows import PROBE_ROWS as THREAD_PROBE_ROWS
from inference.thread_rows import wide_from_rows

# Forwards of fewer rows run on the decode threads until the engine measures the crossover on this
# CPU (inference.thread_rows). With OMP_WAIT_POLICY=PASSIVE the second thread sleeps between
# torch's parallel regions, and a forward runs ~25 of them per layer; waking it costs more than it
# saves until the matmuls are large. Measured on the 2-core AMX machine, idle, int4, rows after 300
# kept positions, medians of 5 interleaved (1 thread / 2 threads): 100 rows 140 / 222 ms, 200 rows
# 200 / 268, 300 rows 264 / 293, 400 rows 333 / 335, 550 rows 429 / 400, 800 rows 546 / 455.
WIDE_FROM_ROWS = 400


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x: [..., D] fp32 -> x / rms(x) * weight (one fused op: decode is bound by op count)."""
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def rope_tables(head_dim: int, max_pos: int, base: float, freq_factors: torch.Tensor | None = None) -> torch.Tensor:
    """Rotations as unit complex numbers: [max_pos, head_dim/2], angle pos * base^(-2i/head_dim)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    if freq_factors is not None:  # Llama 3.1-style long-context scaling, as stored in the GGUF
        inv_freq = inv_freq / freq_factors.double()
    angles = torch.outer(torch.arange(max_pos, dtype=torch.float64), inv_freq)
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)


def apply_rope(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs (x[2i], x[2i+1]) as complex numbers.

    x: [B, H, T, D]; rot: [T, D/2] complex64 -> fp32 [B, H, T, D].
    """
    xc = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # [B, H, T, D/2]
    return torch.view_as_real(xc * rot).flatten(-2)


def causal_mask(start: int, t: int) -> torch.Tensor:
    """Bool [t, start+t]: query i (at position start+i) sees keys 0..start+i."""
    q_pos = torch.arange(start, start + t)[:, None]
    return torch.arange(start + t)[None, :] <= q_pos


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """q: [B, H, T, D]; k, v: [B, H_kv, S, D] with S = start + T -> [B, H, T, D].

    A single query runs in the cache's dtype; several run in ``dtype``.
    """
    t = q.shape[2]
    if t == 1:  # one new token sees the whole cache
        return decode_attention(q.to(k.dtype), k, v)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    if start == 0:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    if t < MASKED_BELOW_ROWS:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(start, t), enable_gqa=True)
    return offset_causal_attention(q, k, v, start)


# Queries after cached keys: below this many, one flash call with an explicit mask; from here, two
# calls merged (offset_causal_attention). Per layer, 9 heads over 3 KV heads, AMX machine, 1 and 2
# threads: 300 queries after 64 keys, mask 0.77-1.11 ms against 2.16-2.28 merged; 250 after 300,
# 0.91 against 2.26; 30 after 1,500, 0.48-0.65 against 1.02-1.17. From ~800 queries the masked
# call's wasted blocks cost more (800 after 1,000 in fp32: 15.7 against 14.4 ms).
MASKED_BELOW_ROWS = 768


def offset_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> torch.Tensor:
    """Queries at positions start.. over cached keys (all visible) and their own keys (causal).

    q: [B, H, T, D]; k, v: [B, H_kv, start + T, D]. Two flash-attention calls, merged by their
    log-sum-exp, instead of one call with an explicit mask, which computes every masked block:
    measured for 1702 queries after 64 cached keys, 125 ms against 235 ms (fp32, 2 cores).
    """
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)  # the private op has no GQA
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    o_old, lse_old = flash(q, k[:, :, :start], v[:, :, :start])  # lse: [B, H, T]
    o_new, lse_new = flash(q, k[:, :, start:], v[:, :, start:], is_causal=True)
    m = torch.maximum(lse_old, lse_new)
    w_old, w_new = (lse_old - m).exp().unsqueeze(-1), (lse_new - m).exp().unsqueeze(-1)
    return ((o_old.float() * w_old + o_new.float() * w_new) / (w_old + w_new)).to(q.dtype)


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One query position, plain matmuls: q: [B, H, 1, D]; k, v: [B, H_kv, S, D] -> [B, H, 1, D].

    Measured: SDPA's CPU flash kernel takes ~0.8 ms per layer for a single query, these two
    small matmuls and a softmax ~0.1 ms. Query head i reads KV head i // (H / H_kv), as in SDPA's enable_gqa.
    """
    b, h, _, d = q.shape
    qg = q.reshape(b, k.shape[1], h // k.shape[1], d)  # [B, H_kv, G, D]
    scores = (qg @ k.transpose(-1, -2)).float() * d**-0.5  # [B, H_kv, G, S]
    o = scores.softmax(-1).to(v.dtype) @ v  # [B, H_kv, G, D]
    return o.reshape(b, h, 1, d)


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """gate_up: [..., 2F] (gate then up) -> silu(gate) * up: [..., F]."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


class Block(nn.Module):
    """One decoder layer: x + attn(norm(x)), then + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig, wqkv: nn.Module, wo: nn.Module, w13: nn.Module, w2: nn.Module,
                 attn_norm: torch.Tensor, ffn_norm: torch.Tensor, ffn_rotation: FfnRotation | None = None):
        super().__init__()
        self.cfg = cfg
        self.wqkv, self.wo, self.w13, self.w2 = wqkv, wo, w13, w2
        self.ffn_rotation = ffn_rotation  # weights in rotated bases (inference.rotation): w2's input
        self.register_buffer("attn_norm", attn_norm.float())
        self.register_buffer("ffn_norm", ffn_norm.float())

    def forward(self, h: torch.Tensor, layer: int, start: int, cache: KVCache,
                rot: torch.Tensor, act: torch.dtype) -> torch.Tensor:
        q, k, v = self.project(h, rot, act)
        k_all, v_all = cache.update(layer, start, k, v)  # the cache write converts v to its dtype
        if cache.observer is not None:  # in-sequence eviction scores tokens (inference.kv_evict)
            cache.observer.observe(layer, q, k_all, start)
        # one query: fp32 matmuls are faster than bf16 at this size; many: bf16 (AMX) for the quant modes
        o = attention(q, k_all, v_all, start, act)  # [B, H, T, D]
        return self.mix(h, o, act)

    def project(self, h: torch.Tensor, rot: torch.Tensor,
                act: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """h: [B, T, dim] fp32; rot: [T, D/2] -> q [B, H, T, D], k after RoPE and v [B, H_kv, T, D]."""
        c = self.cfg
        b, t, _ = h.shape
        qkv = self.wqkv(rms_norm(h, self.attn_norm, c.norm_eps).to(act))  # [B, T, (H + 2 H_kv) D]
        heads = qkv.view(b, t, -1, c.head_dim).transpose(1, 2)  # [B, H + 2 H_kv, T, D]
        qk = apply_rope(heads[:, : c.n_heads + c.n_kv_heads], rot)  # one rotation for q and k, fp32
        return qk[:, : c.n_heads], qk[:, c.n_heads :], heads[:, c.n_heads + c.n_kv_heads :]

    def mix(self, h: torch.Tensor, o: torch.Tensor, act: torch.dtype) -> torch.Tensor:
        """The rest of the layer after attention: h + wo(o), then + mlp(norm(h)). o: [B, H, T, D]."""
        b, t, _ = h.shape
        h = h + self.wo(o.transpose(1, 2).reshape(b, t, -1))  # fp32 + bf16 promotes to fp32
        g = swiglu(self.w13(rms_norm(h, self.ffn_norm, self.cfg.norm_eps).to(act)))
        return h + self.w2(g if self.ffn_rotation is None else self.ffn_rotation(g))


class Transformer(nn.Module):
    """The whole decoder. ``quant`` is "fp32" (reference), "int8" or "int4"."""

    def __init__(self, cfg: ModelConfig, embed: Embedding, blocks: list[Block], norm: torch.Tensor,
                 head: nn.Module, quant: str, freq_factors: torch.Tensor | None = None):
        super().__init__()
        self.cfg, self.quant = cfg, quant
        self.embed, self.blocks, self.head = embed, nn.ModuleList(blocks), head
        self.register_buffer("norm", norm.float())
        self.freq_factors = freq_factors
        # grown on demand by rotations(): a table for SmolLM2's whole 8,192-position context is
        # 2 MiB that short conversations never read
        self.rot = rope_tables(cfg.head_dim, min(_ROPE_CHUNK, cfg.context_length), cfg.rope_base, freq_factors)
        # fp32 is the numerical reference; the quantized modes compute in bf16 where the CPU has it
        # natively (AMX/AVX512-BF16), else in fp32 (inference.compute_dtype)
        self.act_dtype = torch.float32
        self.use_compute(compute_dtype())  # leaves the fp32 engine in fp32
        self.threads: tuple[int, int] | None = None  # (prefill, decode); None: leave torch's setting
        self.wide_from_rows = WIDE_FROM_ROWS  # forwards of this many rows run on the prefill threads

    def threads_for(self, rows: int) -> None:
        """Set torch's threads for a forward of ``rows`` tokens (process-wide: torch has no per-call
        thread count): ``prefill`` threads from ``wide_from_rows`` rows, else ``decode`` threads."""
        if self.threads is None:
            return
        want = self.threads[0] if rows >= self.wide_from_rows else self.threads[1]
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)

    def use_threads(self, prefill: int, decode: int) -> None:
        """Run forwards of fewer than ``wide_from_rows`` tokens on ``decode`` threads and longer
        ones on ``prefill`` threads (``use_wide_rows`` measures the crossover on this CPU).

        A decode step runs ~180 matmuls that torch splits over its threads; on a shared 2-core
        machine each one waits for the slower of two threads, and when another process holds a
        core that wait is a scheduler slice. Measured (int4, load average ~4.7): 21-35 ms per
        token on 1 thread, 57-173 ms on 2; at load ~3, 59 against 52 tokens/s. Short prefills
        behave the same way even on an idle machine (see WIDE_FROM_ROWS). Switching costs 0.2 µs.
        """
        self.threads = (prefill, decode)

    def use_compute(self, dtype: torch.dtype) -> None:
        """Run the quantized modes' dequantized matmuls and multi-row attention in ``dtype`` (bf16
        or fp32); decode steps keep the packed bf16 kernels. The fp32 engine stays fp32."""
        if dtype not in (torch.bfloat16, torch.float32):
            raise InvalidParams(f"compute dtype must be bfloat16 or float32, not {dtype}")
        if self.quant == "fp32":
            return
        self.act_dtype = dtype
        for m in self.modules():
            if isinstance(m, (Int4Linear, Int8Linear)):
                m.compute = dtype

    def use_native(self, kernels: NativeKernels | None) -> None:
        """Dequantize int4 weights for prefill with the C kernel (None: in PyTorch). Same bits."""
        for m in self.modules():
            if isinstance(m, Int4Linear):
                m.native = kernels

    def use_prefill_rows(self, rows: int | None = None, memo: Path | None = None) -> int | None:
        """Set from how many rows the blocks' int4/int8 linears dequantize for a bf16 matmul instead
        of running the packed kernel; ``None`` measures it on this CPU (inference.prefill_path),
        or reads an earlier measurement from ``memo``. Returns the value in force (None for fp32,
        which has no packed kernel)."""
        packed = [m for m in self.blocks.modules() if isinstance(m, (Int4Linear, Int8Linear))]
        if not packed:
            return None
        if rows is None:
            first = [m for m in self.blocks[0].modules() if isinstance(m, (Int4Linear, Int8Linear))]
            self.threads_for(1)  # the crossover lies far below WIDE_FROM_ROWS: measure it on those threads
            rows = crossover_rows(first, memo)
        for m in packed:
            m.prefill_min_rows = rows
        return rows

    def use_wide_rows(self, rows: int | None = None, memo: Path | None = None) -> int:
        """Set from how many rows a forward runs on the prefill threads; ``None`` measures it on
        this CPU with one layer's forward (inference.thread_rows), or reads an earlier measurement
        from ``memo``. Returns the value in force. Call after ``use_threads``, ``use_native`` and
        ``use_prefill_rows``: the probe times the paths they chose."""
        if rows is None and self.threads is not None and self.threads[0] != self.threads[1]:
            packed = [m for m in self.blocks[0].modules() if isinstance(m, (Int4Linear, Int8Linear))]
            native = any(getattr(m, "native", None) is not None for m in packed)
            gemv = any(m.gemv_ready() for m in packed)  # another decode path
            workload = (self.quant, self.cfg.dim, self.cfg.ffn_dim, self.cfg.n_heads, self.cfg.n_kv_heads,
                        native, packed[0].prefill_min_rows if packed else None, str(self.act_dtype), gemv)
            rows = wide_from_rows(self.threads, self._layer_probe(), workload, memo)
        if rows is not None:
            self.wide_from_rows = rows
        return self.wide_from_rows

    def _layer_probe(self) -> Callable[[int], torch.Tensor]:
        """One forward of the first layer over ``rows`` random rows at positions 0.. (its own cache,
        allocated at the first call: a load that finds the crossover in the memo never runs it)."""
        caches: list[KVCache] = []

        @torch.inference_mode()
        def run(rows: int) -> torch.Tensor:
            if not caches:
                caches.append(self.new_cache(max(THREAD_PROBE_ROWS)))
            h = torch.randn(1, rows, self.cfg.dim, generator=torch.Generator().manual_seed(rows))
            return self.blocks[0](h, 0, 0, caches[0], self.rotations(rows)[:rows], self.act_dtype)

        return run

    @classmethod
    def from_gguf(cls, gf: GGUFFile, quant: str = "int4", int8_codes: Int8Codes | None = None,
                  rotation: Rotation | None = None) -> Transformer:
        """``int8_codes`` (quant "int8" only): calibrated codes for every block Linear
        (``inference.int8_calibration``) instead of round-to-nearest. ``rotation`` (fp32 and int8):
        the bases the block weights are kept in (``inference.rotation``); with codes, the bases
        the codes were computed in. The model's outputs are the same in any basis, up to rounding."""
        if int8_codes is not None and quant != "int8":
            raise InvalidParams(f"int8_codes are for quant 'int8', not {quant!r}")
        if rotation is not None and quant == "int4":
            raise InvalidParams("int4 keeps the file's codes exactly: it has no rotated form")
        cfg = gf.config
        if rotation is not None:
            rotation.check(cfg)
        blocks = [_block(gf, cfg, i, quant, int8_codes, rotation) for i in range(cfg.n_layers)]
        embed, head = _embedding_and_head(gf, cfg, quant, rotation)
        rope_freqs = gf.tensors.get("rope_freqs.weight")
        factors = dequantize_gguf(rope_freqs.data, rope_freqs.qtype, rope_freqs.shape) if rope_freqs else None
        out_norm = gf.tensor("output_norm.weight")
        norm = dequantize_gguf(out_norm.data, out_norm.qtype, (cfg.dim,))
        return cls(cfg, embed, blocks, norm, head, quant, factors)

    def rotations(self, end: int) -> torch.Tensor:
        """RoPE rotations of positions 0..end-1 (at least): [>= end, D/2] complex64."""
        if end > self.rot.shape[0]:
            n = max(end, min(2 * self.rot.shape[0], self.cfg.context_length))
            self.rot = rope_tables(self.cfg.head_dim, n, self.cfg.rope_base, self.freq_factors)
        return self.rot

    def new_cache(self, max_len: int, batch: int = 1) -> KVCache:
        # fp32 even for the bf16 modes: decode attention over an fp32 cache measured 2x faster
        return KVCache.allocate(self.cfg, max_len, torch.float32, batch)

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, start: int, cache: KVCache, last_only: bool = True) -> torch.Tensor:
        """tokens: [B, T] at positions start..start+T-1 -> fp32 logits [B, 1 or T, V].

        ``start`` is the first cache slot; the positions are shifted by ``cache.pos_offset``
        (non-zero only after in-sequence eviction compacted the cache).
        """
        t = tokens.shape[1]
        self.threads_for(tokens.numel())
        pos = start + cache.pos_offset
        rot = self.rotations(pos + t)[pos : pos + t]  # [T, D/2] complex
        h = self.embed(tokens)  # [B, T, dim] fp32
        for i, block in enumerate(self.blocks):
            h = block(h, i, start, cache, rot, self.act_dtype)
        cache.length = start + t
        if last_only:
            h = h[:, -1:]
        return self.logits(h)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Final norm and output head: h [B, T, dim] fp32 -> logits [B, T, V] fp32."""
        if self.embed.rotation is not None:  # the residual stream is kept rotated: back to the head's basis
            h = h @ self.embed.rotation.t()
        return self.head(rms_norm(h, self.norm, self.cfg.norm_eps)).float()  # fp32 in: the head refines


def _block(gf: GGUFFile, cfg: ModelConfig, i: int, quant: str, int8_codes: Int8Codes | None = None,
           rotation: Rotation | None = None) -> Block:
    def raw(name: str):  # noqa: ANN202
        return gf.tensor(f"blk.{i}.{name}.weight")

    norms = {name: dequantize_gguf(raw(name).data, raw(name).qtype, (cfg.dim,)) for name in ("attn_norm", "ffn_norm")}

    def linear(attr: str) -> nn.Module:
        parts = [raw(p) for p in FUSED_PARTS[attr]]
        if int8_codes is not None:
            q, scales = int8_codes[f"blk.{i}.{attr}"]
            want = (sum(r.shape[0] for r in parts), parts[0].shape[1])
            if tuple(q.shape) != want:
                raise ModelLoadError(f"int8 codes for blk.{i}.{attr} have shape {tuple(q.shape)}, expected {want}")
            return Int8Linear(q, scales)
        if rotation is None:
            return make_linear(parts, quant)
        w = torch.cat([dequantize_gguf(r.data, r.qtype, r.shape) for r in parts], dim=0)
        gain = norms[NORM_OF[attr]] if attr in NORM_OF else None
        return linear_from_float(rotate_weight(w, attr, cfg, rotation, gain).float(), quant)

    layers = [linear(attr) for attr in ("wqkv", "wo", "w13", "w2")]
    if rotation is None:
        return Block(cfg, *layers, norms["attn_norm"], norms["ffn_norm"])
    # the gains live in wqkv's and w13's columns now (inference.rotation.input_basis)
    return Block(cfg, *layers, torch.ones(cfg.dim), torch.ones(cfg.dim), FfnRotation(rotation))


def _embedding_and_head(gf: GGUFFile, cfg: ModelConfig, quant: str,
                        rotation: Rotation | None = None) -> tuple[Embedding, nn.Module]:
    """The embedding table, and the output head (the same matrix when embeddings are tied).

    With ``rotation``, the embedding outputs rows in the rotated basis and :meth:`Transformer.logits`
    turns the last hidden state back: the table and the head keep the file's exact values."""
    emb = gf.tensor("token_embd.weight")
    if emb.shape != (cfg.vocab_size, cfg.dim):
        raise ModelLoadError(f"token_embd has shape {emb.shape}, expected {(cfg.vocab_size, cfg.dim)}")
    residual = rotation.residual.float().contiguous() if rotation is not None else None
    if quant == "fp32":
        w = dequantize_gguf(emb.data, emb.qtype, emb.shape)  # [V, dim]
        embed = Embedding(weight=w, rotation=residual)
        if cfg.tied_embeddings:
            return embed, FloatLinear(w)  # one fp32 copy serves both
        return embed, make_linear([gf.tensor("output.weight")], quant)
    table = TokenTable.from_raw(emb)
    head = TiedHead(table) if cfg.tied_embeddings else make_linear([gf.tensor("output.weight")], quant)
    return Embedding(table=table, rotation=residual), head


def random_model(cfg: ModelConfig, quant: str = "fp32", seed: int = 0) -> Transformer:
    """A model with random weights, for fast tests. Usage: ``random_model(TINY_CONFIG, "int8")``."""
    g = torch.Generator().manual_seed(seed)

    def w(n: int, k: int) -> torch.Tensor:
        return torch.randn(n, k, generator=g) / k**0.5

    c, kv = cfg, cfg.n_kv_heads * cfg.head_dim
    blocks = [
        Block(c, linear_from_float(w(c.dim + 2 * kv, c.dim), quant), linear_from_float(w(c.dim, c.dim), quant),
              linear_from_float(w(2 * c.ffn_dim, c.dim), quant), linear_from_float(w(c.dim, c.ffn_dim), quant),
              1 + 0.1 * torch.randn(c.dim, generator=g), 1 + 0.1 * torch.randn(c.dim, generator=g))
        for _ in range(c.n_layers)
    ]
    table = torch.randn(c.vocab_size, c.dim, generator=g)
    if quant == "fp32":
        head: nn.Module = FloatLinear(table)
        embed = Embedding(weight=table)
    else:
        tt = TokenTable.from_float(table)
        embed, head = Embedding(table=tt), TiedHead(tt)
    return Transformer(c, embed, blocks, torch.ones(c.dim), head, quant)


_ROPE_CHUNK = 1024  # first size of the RoPE table; it doubles when a position needs more

TINY_CONFIG = ModelConfig(vocab_size=512, dim=128, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=256,
                          rope_base=10000.0, norm_eps=1e-5, context_length=256)
