"""A query's encoder: the same transformer with its Linear layers quantized to int8 (dynamic).

Why: a search embeds one short query (~10 tokens) before it can rank anything, and on a CPU
without native bf16 MiniLM runs in float32, where that embedding is half of a search's time:
its small-row products read ~40 MiB of float32 weights per query (more than such CPUs' L3, and
the search's own reads evict them between queries). int8 weights are a quarter of those bytes and
fbgemm multiplies them in integer SIMD: 8.3 against 17.0 ms per query on a Zen 1 EPYC. Stored
notes keep their float32 vectors; only the query side changes, and on 30 LongMemEval questions
no retrieval figure got worse (docs/benchmarks.md, the embedding section).

Weights get one scale per output channel; activations one scale per call (``quantize_dynamic``),
so nothing is calibrated. The embedding table, layer norms and attention stay float32, and the
table is shared with the float32 model. Measured on 120 LongMemEval questions against the float32
vectors (2-core AMD EPYC, AVX2 only): cosine mean 0.982, min 0.970, with one scale per output
channel; 0.953 / 0.895 with one scale per weight (torch's default), which was not kept.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any

from retrieval.traced_encoder import TracedEncoder, plain_pipeline


def build_int8_query_encoder(model: Any) -> TracedEncoder | None:
    """A traced int8-dynamic copy of ``model``'s (a float32 SentenceTransformer) transformer, or
    None when the pipeline cannot be traced or this torch has no quantized engine."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig

    engines = torch.backends.quantized.supported_engines
    if not plain_pipeline(model) or not ("x86" in engines or "fbgemm" in engines):
        return None
    auto = model[0].auto_model
    if next(auto.parameters()).dtype != torch.float32:
        return None  # bf16 CPUs embed queries fast enough; int8 is for the float32 path
    # A copy whose embedding table (45 MiB, no Linear in it) is the float32 model's own.
    shell = copy.deepcopy(auto, memo={id(auto.embeddings): auto.embeddings})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization is marked deprecated in 2.13 (pinned)
            quantized = torch.ao.quantization.quantize_dynamic(
                shell, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
        return TracedEncoder.of(quantized, model, batch_size=1)
    except Exception:  # noqa: BLE001 - any failure to quantize or trace means "float32 queries"
        return None
