"""Chat with memory: TTFT and latency over a scripted 20-turn conversation, chunk reuse on vs off.

Prints one JSON line per turn and a summary line:
    {"turn", "ttft_on_ms", "ttft_off_ms", "total_on_ms", "total_off_ms", "speedup", "agree",
     "chunk_reused_tokens", "chunk_computed_tokens", "prompt_tokens", "memories"}
    {"summary": ..., "ttft_speedup_median_from_turn3", "agreement", ...}

    python bench/chat.py                 # 20 turns, max_tokens 24 (5-10 min on 2 shared cores)
    python bench/chat.py --turns 6       # quicker
    python bench/chat.py --blend-ratio 0.5   # more selective recompute: closer to exact, slower

Setup: an Engram (real SQLite, FAISS, MiniLM) holding the shipped sample conversation
(api/data, 30 turns over eleven weeks); the real SmolLM2 engine (int4) with a prefix cache and a
tiered chunk store under the value-aware policy. Each turn is prepared once (the same retrieval,
the same chunks, the same prompt) and generated twice, greedy, in the same run: with chunk reuse
(chunks' KV from the store, selective recompute) and without (the chunk store detached: the
prompt is prefilled, the prefix cache still serves what it can). The "on" reply is written back,
so memory grows as in a real chat; between turns the written-back notes' chunks are computed
(``ChatPipeline.warm``, what the service does after sending a reply; ``--no-warm`` skips it). ``agree``: the two greedy replies are identical.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see README)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTIONS = [
    "Where do I work and what is my job?",
    "How long is my commute?",
    "What is my dog's name?",
    "Is Pepper's paw better?",
    "When is my half marathon?",
    "How far was my last long run?",
    "Who is visiting me from Lisbon?",
    "Which jazz club did we go to?",
    "Am I still vegetarian?",
    "Suggest a quick dinner I can eat.",
    "Where do I live now?",
    "How do I get to the office?",
    "What project am I leading at work?",
    "How many jobs did the migration move?",
    "Who is my manager?",
    "What should I pack for the half marathon?",
    "Remind me what the vet said about Pepper.",
    "What does my sister like?",
    "What did I tell you about my diet?",
    "Summarise what you know about me.",
]


def main() -> None:
    args = _args()
    from api.chat.memory_kv import MemoryKV
    from api.chat.turn import ChatConfig, ChatPipeline, ChatRequest
    from api.demo import sample_records
    from api.engram import Engram
    from inference.chunk_store import StoreConfig, TieredChunkStore
    from inference.local_engine import LocalEngine

    store = TieredChunkStore(StoreConfig(ram_bytes=256 << 20, policy="value"))
    from inference.blend import BlendConfig

    engine = LocalEngine(threads=2, chunk_store=store, prefix_cache_blocks=32, block_size=64,
                         blend=BlendConfig(ratio=args.blend_ratio))
    pipeline = ChatPipeline(engine, ChatConfig(context_tokens=args.budget, top_k=args.top_k), MemoryKV(engine))
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Engram(Path(tmp) / "bench.db", workers=0) as mem:
        mem.add_many(sample_records())
        mem.wait_for_jobs(timeout=600)
        for i, question in enumerate(QUESTIONS[: args.turns], start=1):
            request = ChatRequest(question, user_id="sam", max_tokens=args.max_tokens)
            on = pipeline.prepare("bench", mem, request)
            off = dataclasses.replace(on, stats={})
            _generate(pipeline, on)
            engine.chunk_store = None
            try:
                _generate(pipeline, off)
            finally:
                engine.chunk_store = store
            result = pipeline.finish("bench", mem, on)
            if args.warm:
                pipeline.warm("bench", result)  # between turns, as the service does after replying
            row = _row(i, on, off)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps(_summary(rows, args)), flush=True)


def _generate(pipeline, turn) -> None:
    for _ in pipeline.generate(turn, "bench"):
        pass


def _row(i, on, off) -> dict:
    s, t = on.stats, off.stats
    return {"turn": i, "ttft_on_ms": s["ttft_ms"], "ttft_off_ms": t["ttft_ms"], "total_on_ms": s["total_ms"],
            "total_off_ms": t["total_ms"], "speedup": round(t["ttft_ms"] / max(s["ttft_ms"], 1e-6), 2),
            "agree": on.text.strip() == off.text.strip(), "chunk_reused_tokens": s["chunk_reused_tokens"],
            "chunk_computed_tokens": s["chunk_computed_tokens"], "recomputed_tokens": s["recomputed_tokens"],
            "prompt_tokens": s["prompt_tokens"], "memories": len(on.chunks)}


def _summary(rows, args) -> dict:
    late = [r for r in rows if r["turn"] >= 3]
    return {"summary": "chat", "turns": len(rows), "max_tokens": args.max_tokens, "budget": args.budget,
            "blend_ratio": args.blend_ratio, "warm": args.warm,
            "ttft_speedup_median_from_turn3": round(statistics.median(r["speedup"] for r in late), 2) if late else None,
            "ttft_on_median_ms": round(statistics.median(r["ttft_on_ms"] for r in late), 1) if late else None,
            "ttft_off_median_ms": round(statistics.median(r["ttft_off_ms"] for r in late), 1) if late else None,
            "total_on_median_ms": round(statistics.median(r["total_on_ms"] for r in rows), 1),
            "total_off_median_ms": round(statistics.median(r["total_off_ms"] for r in rows), 1),
            "agreement": round(sum(r["agree"] for r in rows) / len(rows), 3),
            "reused_share_from_turn3": round(sum(r["chunk_reused_tokens"] for r in late)
                                             / max(sum(r["chunk_reused_tokens"] + r["chunk_computed_tokens"]
                                                       for r in late), 1), 3) if late else None}


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--turns", type=int, default=20)
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--budget", type=int, default=512, help="token budget of the memory chunks")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--no-warm", dest="warm", action="store_false",
                   help="do not compute written-back notes' chunks between turns")
    p.add_argument("--blend-ratio", type=float, default=0.15, help="selective recompute share (engine default 0.15)")
    return p.parse_args()


if __name__ == "__main__":
    main()
