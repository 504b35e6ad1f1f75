"""Chunk store and in-sequence eviction figures. Prints one JSON line per measurement.

    PYTHONPATH=. python bench/chunk_store.py              # everything (needs Redis on 127.0.0.1:6379)
    PYTHONPATH=. python bench/chunk_store.py --no-redis --no-seq

Sections (``"section"`` field):
- ``bytes``: bytes per token of real chunk KV (SmolLM2, HotpotQA paragraphs run through the
  model) in RAM and encoded per codec (disk/Redis), with the codec's relative error on K and V
  and its effect on the next tokens' logits when the decoded KV is used as the prefix.
- ``latency``: save/load ms per chunk per tier; baseline in the same run: recomputing the chunk
  (prefill of its tokens), reported as ``load_vs_recompute``.
- ``hit_rate``: a Zipf trace with retention hints replayed with the same byte budget per policy;
  LRU is the baseline (``vs_lru``). ``value_no_hints`` is the value-aware policy with the hints
  ignored (prior 0), to show what the memory layer's retention adds.
- ``seq``: a long text under a KV slot budget per in-sequence policy: top-1 agreement with full
  attention and perplexity, teacher-forced; baseline: full attention in the same run.
"""
from __future__ import annotations

import os

for _k, _v in (("OMP_WAIT_POLICY", "PASSIVE"), ("OPENBLAS_NUM_THREADS", "1"), ("HF_HUB_OFFLINE", "1"),
               ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_k, _v)  # before torch is imported (see README)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "hotpotqa_dev.json"

from inference.chunk_kv import ChunkKV, chunk_key  # noqa: E402
from inference.chunk_store import StoreConfig, TieredChunkStore  # noqa: E402
from inference.chunk_store.codec import CODECS, decode, encode, relative_error  # noqa: E402
from inference.chunk_store.disk_tier import DiskTier  # noqa: E402
from inference.chunk_store.policies import make_policy  # noqa: E402
from inference.chunk_store.redis_tier import RedisTier  # noqa: E402
from inference.chunk_store.trace import replay, zipf_trace  # noqa: E402
from inference.gguf_file import GGUFFile, default_model_path  # noqa: E402
from inference.kv_evict import BudgetedSession, SeqEvictionConfig  # noqa: E402
from inference.model import Transformer  # noqa: E402
from inference.tokenizer import Tokenizer  # noqa: E402


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def paragraphs(n: int) -> list[str]:
    out: list[str] = []
    for item in json.loads(DATA.read_text()):
        for title, sentences in item["context"]:
            out.append(f"{title}. " + "".join(sentences))
            if len(out) == n:
                return out
    return out


def chunk_of(model: Transformer, tokens: list[int], model_id: str) -> tuple[ChunkKV, float]:
    """The chunk's KV computed alone at positions 0.. (and the ms that took: the recompute cost)."""
    cache = model.new_cache(len(tokens))
    t0 = time.perf_counter()
    model(torch.tensor([tokens]), 0, cache)
    ms = (time.perf_counter() - t0) * 1e3
    n = len(tokens)
    k = torch.stack([cache.k[i][0, :, :n] for i in range(len(cache.k))])  # [L, H_kv, n, D]
    v = torch.stack([cache.v[i][0, :, :n] for i in range(len(cache.v))])
    return ChunkKV(chunk_key(model_id, model.quant, tokens), tuple(tokens), k, v, {"rope": "absolute@0"}), ms


def next_logits(model: Transformer, chunk: ChunkKV, follow: list[int]) -> torch.Tensor:
    """Logits of ``follow`` fed after the chunk's KV used as the prefix: [T, V]."""
    n = chunk.n_tokens
    cache = model.new_cache(n + len(follow))
    for i in range(len(cache.k)):
        cache.update(i, 0, chunk.k[i][None], chunk.v[i][None])
    return model(torch.tensor([follow]), n, cache, last_only=False)[0]


def bench_bytes(model: Transformer, chunks: list[ChunkKV], follows: list[list[int]]) -> None:
    tokens = sum(c.n_tokens for c in chunks)
    emit(section="bytes", tier="ram", codec="tensors", bytes_per_token=round(sum(c.nbytes for c in chunks) / tokens, 1))
    refs = [next_logits(model, c, f) for c, f in zip(chunks, follows)]
    for codec in CODECS:
        size = sum(len(encode(c, codec)) for c in chunks)
        errs = [relative_error(c, codec) for c in chunks]
        diffs, agree, n = [], 0, 0
        for c, f, ref in zip(chunks, follows, refs):
            got = next_logits(model, decode(encode(c, codec)), f)
            diffs.append(float((got - ref).abs().max()))
            agree, n = agree + int((got.argmax(-1) == ref.argmax(-1)).sum()), n + len(f)
        emit(section="bytes", tier="disk/redis", codec=codec, bytes_per_token=round(size / tokens, 1),
             k_rel_err=round(max(e["k"] for e in errs), 5), v_rel_err=round(max(e["v"] for e in errs), 5),
             next_logits_max_abs_diff=round(max(diffs), 4), next_top1_agree=round(agree / n, 4),
             logits_span=round(float(max(r.abs().max() for r in refs)), 1))


def timed(fn, repeat: int = 3) -> float:  # noqa: ANN001
    """Median ms of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_latency(chunks: list[ChunkKV], recompute_ms: list[float], redis_client) -> None:  # noqa: ANN001
    recompute = statistics.median(recompute_ms)
    n_tok = statistics.median(c.n_tokens for c in chunks)
    emit(section="latency", tier="recompute (baseline)", ms_per_chunk=round(recompute, 2), tokens_per_chunk=n_tok)
    big = 1 << 40
    with tempfile.TemporaryDirectory() as d:
        store = TieredChunkStore(StoreConfig(ram_bytes=big))
        save = statistics.median(timed(lambda c=c: store.put(c)) for c in chunks)
        load = statistics.median(timed(lambda c=c: store.get(c.key)) for c in chunks)
        emit(section="latency", tier="ram", codec="tensors", save_ms=round(save, 3), load_ms=round(load, 3),
             load_vs_recompute=round(load / recompute, 4))
        for codec in CODECS:
            tiers = [("disk", DiskTier(Path(d) / codec, big, make_policy("lru"), codec))]
            if redis_client is not None:
                tiers.append(("redis", RedisTier(redis_client, f"engram-bench:kv:{uuid.uuid4().hex}", big, codec)))
            for name, tier in tiers:
                save = statistics.median(timed(lambda c=c: tier.put(c, 0)) for c in chunks)
                load = statistics.median(timed(lambda c=c: tier.get(c.key, 0)) for c in chunks)
                emit(section="latency", tier=name, codec=codec, save_ms=round(save, 2), load_ms=round(load, 2),
                     load_vs_recompute=round(load / recompute, 3))
                if name == "redis":
                    tier.clear()


def bench_hit_rates() -> None:
    trace = zipf_trace(n_chunks=300, n_requests=20000, seed=0)
    for share in (0.05, 0.1, 0.2):
        budget = int(share * trace.total_tokens * 64)  # synthetic chunks hold 64 bytes per token
        rates = {}
        for name, policy, args in (("lru", "lru", {}), ("lfu", "lfu", {}), ("value", "value", {}),
                                   ("value_no_hints", "value", {"prior": 0.0})):
            store = TieredChunkStore(StoreConfig(ram_bytes=budget, policy=policy, policy_args=args))
            rates[name] = replay(store, trace)
            assert store.ram.index.nbytes <= budget
        for name, r in rates.items():
            emit(section="hit_rate", budget_share=share, policy=name, hit_rate=round(r["hit_rate"], 4),
                 token_hit_rate=round(r["token_hit_rate"], 4),
                 vs_lru=round(r["hit_rate"] / rates["lru"]["hit_rate"], 3))


def greedy_full(model: Transformer, cache, logits: torch.Tensor, n: int) -> list[int]:  # noqa: ANN001
    out = []
    for _ in range(n):
        out.append(int(logits.argmax()))
        logits = model(torch.tensor([[out[-1]]]), cache.length, cache)[0, -1]
    return out


def bench_seq(model: Transformer, text: list[int], budgets: list[int], piece: int = 32, n_gen: int = 24) -> None:
    full_cache = model.new_cache(len(text) + n_gen)
    t0 = time.perf_counter()
    full = torch.cat([model(torch.tensor([text[i : i + piece]]), i, full_cache, last_only=False)[0]
                      for i in range(0, len(text), piece)])
    base_s = time.perf_counter() - t0
    full_reply = greedy_full(model, full_cache, full[-1], n_gen)
    full = full[: len(text) - 1]
    target = torch.tensor(text[1:])

    def score(logits: torch.Tensor) -> tuple[float, float]:
        nll = torch.nn.functional.cross_entropy(logits, target)
        return round(float((logits.argmax(-1) == full.argmax(-1)).float().mean()), 4), round(math.exp(float(nll)), 3)

    agree, ppl = score(full)
    emit(section="seq", policy="full (baseline)", budget=len(text), tokens=len(text), top1_vs_full=agree, ppl=ppl,
         seconds=round(base_s, 2))
    variants = [("streaming", {}), ("window_no_sinks", {"n_sink": 0}), ("snapkv", {}), ("h2o", {})]
    for budget in budgets:
        for name, extra in variants:
            policy = "streaming" if name == "window_no_sinks" else name
            s = BudgetedSession(model, SeqEvictionConfig(budget=budget, policy=policy, **extra))
            t0 = time.perf_counter()
            got = torch.cat([s.feed(text[i : i + piece], all_logits=True) for i in range(0, len(text), piece)])
            secs = time.perf_counter() - t0
            agree, ppl = score(got[: len(text) - 1])
            reply = s.generate(n_gen, first_logits=got[-1])  # greedy, after the whole text, under the budget
            same = next((i for i, (a, b) in enumerate(zip(reply, full_reply)) if a != b), len(reply))
            emit(section="seq", policy=name, budget=budget, tokens=len(text), top1_vs_full=agree, ppl=ppl,
                 evicted_slots=s.evicted_slots, max_slots=s.cfg.budget, slots_at_end=s.cache.length,
                 seconds=round(secs, 2), vs_full_time=round(secs / base_s, 2), generated=len(reply),
                 greedy_prefix_equal_to_full=same)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quant", default="int4")
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--sections", default="bytes,latency,hit_rate,seq")
    ap.add_argument("--seq-tokens", type=int, default=1024)
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    torch.set_num_threads(2)
    gf = GGUFFile.open(default_model_path())
    tok = Tokenizer.from_gguf(gf.metadata)
    model = Transformer.from_gguf(gf, args.quant)
    model_id = f"local/{gf.path.stem}/{args.quant}"
    ids = [tok.encode(p)[:256] for p in paragraphs(args.chunks + 1)]
    if "bytes" in sections:  # codec error measured on the fp32 reference model, free of bf16 noise
        ref = Transformer.from_gguf(gf, "fp32")
        chunks = [chunk_of(ref, t, f"local/{gf.path.stem}/fp32")[0] for t in ids[: args.chunks]]
        emit(section="setup", model="fp32 reference", chunks=len(chunks),
             tokens_per_chunk=[c.n_tokens for c in chunks], kv_shape=list(chunks[0].k.shape))
        bench_bytes(ref, chunks, [t[:16] for t in ids[1 : args.chunks + 1]])
        del ref
    if "latency" in sections:
        chunk_of(model, ids[0], model_id)  # warm-up
        pairs = [chunk_of(model, t, model_id) for t in ids[: args.chunks]]
        redis_client = None
        if not args.no_redis:
            import redis

            redis_client = redis.Redis(host="127.0.0.1", port=6379)
            redis_client.ping()
        bench_latency([c for c, _ in pairs], [ms for _, ms in pairs], redis_client)
    if "hit_rate" in sections:
        bench_hit_rates()
    if "seq" in sections:
        text = tok.encode("\n\n".join(paragraphs(40)))[: args.seq_tokens]
        emit(section="setup", model=model_id, seq_tokens=len(text))
        bench_seq(model, text, [256, 128])


if __name__ == "__main__":
    main()
