"""Chunk-store hit rate over a long chat session: the retention-driven policy vs plain LRU.

Prints one JSON line per policy and a summary:
    {"policy", "budget_bytes", "hit_rate", "token_hit_rate", "hits", "misses", "evictions"}

    python bench/chat_store.py                  # 400 turns (a few minutes: one search per turn)
    python bench/chat_store.py --turns 150 --budget-share 0.2

Setup: an Engram (real SQLite, FAISS, MiniLM, a frozen clock moved 6 hours per turn) in which a
user writes one note per turn (deterministic synthetic chat text, bench/synthetic.py) and asks
about a topic: with probability ``--recent`` one of the last 20 notes, else any earlier note. Each
turn's search (top 8 notes; recalls reinforce them, as in chat) gives the chunks of the prompt,
tokenised with SmolLM2's tokenizer; the trace is recorded once, then replayed against each policy
with the same byte budget (``--budget-share`` of all chunks' bytes, SmolLM2-135M fp32 KV: 46 KB
per token). ``value+retention`` gets, after every turn, each used note's retention as its
predicted reuse (what api/chat/memory_kv.py does); ``value`` is the same policy without hints;
``lru`` is plain LRU. The value policy runs with each of ``--half-lives``
(its frequency decay, in store ticks: about 16 per turn here). A get that misses is followed by a put (the engine computed the chunk).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see README)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LAYERS, KV_HEADS, HEAD_DIM = 30, 3, 64  # SmolLM2-135M


def record(turns: int, recent: float, seed: int) -> list[tuple[list[tuple[str, int]], dict[str, float]]]:
    """[(chunks used this turn as (key, n_tokens)), {key: retention after the turn}] per turn."""
    from datetime import UTC, datetime

    from api.chat.context import note_text
    from api.engram import Engram
    from bench.synthetic import notes
    from inference.gguf_file import GGUFFile, default_model_path
    from inference.tokenizer import Tokenizer
    from memory.clock import FrozenClock

    tok = Tokenizer.from_gguf(GGUFFile.open(default_model_path()).metadata)
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    rng = random.Random(seed)
    texts = notes(turns + 1, seed=seed)
    trace, seen = [], {}
    with tempfile.TemporaryDirectory() as tmp, Engram(Path(tmp) / "s.db", workers=0, clock=clock) as mem:
        written: list[str] = []
        for t in range(turns):
            clock.advance(hours=6)
            mem.add(texts[t], user_id="u")
            written.append(texts[t])
            pool = written[-20:] if rng.random() < recent else written
            hits = mem.search(rng.choice(pool), user_id="u", top_k=8, include_facts=False)
            used = []
            for h in hits:
                text = note_text(h.note)
                seen[h.id] = text
                used.append((h.id, len(tok.encode(text))))
            current = mem.store.get_many(list(seen))
            trace.append((used, {nid: mem.retention(n) for nid, n in current.items()}))
    return trace


def replay(trace, policy: str, hints: bool, budget: int, half_life: float | None = None) -> dict:
    import torch

    from inference.chunk_kv import ChunkKV
    from inference.chunk_store import StoreConfig, TieredChunkStore

    args = {"half_life": half_life} if half_life is not None else {}
    store = TieredChunkStore(StoreConfig(ram_bytes=budget, policy=policy, policy_args=args))
    hits = misses = tok_hit = tok_all = 0
    for used, rets in trace:
        for key, n in used:
            tok_all += n
            if store.get(key) is not None:
                hits, tok_hit = hits + 1, tok_hit + n
                continue
            misses += 1
            kv = torch.zeros(LAYERS, KV_HEADS, n, HEAD_DIM)
            store.put(ChunkKV(key, tuple(range(n)), kv, kv.clone()))
        if hints:
            for key, r in rets.items():
                store.set_reuse(key, min(1.0, max(0.0, r)))
    stats = store.stats()
    return {"policy": f"{policy}+retention" if hints else policy, "half_life": half_life, "budget_bytes": budget,
            "hit_rate": round(hits / max(hits + misses, 1), 4), "token_hit_rate": round(tok_hit / max(tok_all, 1), 4),
            "hits": hits, "misses": misses, "evictions": stats["tiers"]["ram"]["evictions"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--turns", type=int, default=400)
    p.add_argument("--recent", type=float, default=0.6, help="share of turns about one of the last 20 notes")
    p.add_argument("--budget-share", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--half-lives", default="2000,250", help="value policy half-lives (store ticks) to compare")
    args = p.parse_args()
    trace = record(args.turns, args.recent, args.seed)
    sizes = {key: n for used, _ in trace for key, n in used}
    budget = int(args.budget_share * sum(sizes.values()) * LAYERS * KV_HEADS * HEAD_DIM * 4 * 2)
    rows = [replay(trace, "lru", False, budget)]
    for hl in (float(x) for x in args.half_lives.split(",")):
        rows += [replay(trace, "value", False, budget, hl), replay(trace, "value", True, budget, hl)]
    for row in rows:
        print(json.dumps(row), flush=True)
    print(json.dumps({"summary": "chat_store", "turns": args.turns, "unique_chunks": len(sizes),
                      "budget_share": args.budget_share,
                      "best_retention_vs_lru_hit_rate": round(max(r["hit_rate"] for r in rows if "retention" in r["policy"])
                                                              / max(rows[0]["hit_rate"], 1e-9), 3)}))


if __name__ == "__main__":
    main()
