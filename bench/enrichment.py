"""Durable enrichment: what the graph job costs per message on top of the note path, how many LLM calls
the LLM extractor makes per message, and job throughput with the local engine.

    python bench/enrichment.py                 # deterministic part (100 messages x 2 conversations) + local engine (6 messages)
    python bench/enrichment.py --llm-messages 0  # deterministic part only
    python bench/enrichment.py --messages 0      # local-engine part only

Everything goes through ``Engram`` on a durable SQLite file with the real MiniLM embedder and
``workers=0``: first every message is added (the note path: embed, link, insert, jobs queued in the
same transaction) and timed; then the queued jobs are drained with ``run_jobs`` and timed. Baselines
of the same run: the note path, and the same messages ingested straight into a TemporalGraph (what
the job adds is the queue: claim, note read, retract check, link writes, completion). Prints one
JSON line per measurement.
"""
from __future__ import annotations

import os

for _key, _value in (("OMP_WAIT_POLICY", "PASSIVE"), ("OPENBLAS_NUM_THREADS", "1"), ("HF_HUB_OFFLINE", "1"),
                     ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_key, _value)  # before torch is imported (see README)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.config import EngramConfig  # noqa: E402
from api.engram import Engram  # noqa: E402
from bench.graph_ingest import fact_dense, longmemeval  # noqa: E402
from memory.clock import FrozenClock  # noqa: E402
from memory.config import EnrichConfig, MemoryConfig  # noqa: E402

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class CountingEngine:
    """Counts ``complete_json`` calls of the wrapped engine."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.calls = 0

    def complete_json(self, messages, schema, params=None):
        self.calls += 1
        return self.inner.complete_json(messages, schema, params)


def drain(mem: Engram) -> tuple[float, int]:
    start = time.perf_counter()
    ran = mem.run_jobs()
    return time.perf_counter() - start, ran


def graph_alone(messages: list[tuple[str, datetime]], embedder) -> float:
    """Seconds to ingest the messages straight into a TemporalGraph (no queue, no notes)."""
    from graph.extract_rules import RuleExtractor
    from graph.temporal_graph import TemporalGraph
    from memory.database import open_engine, sqlite_url
    from memory.types import Scope

    with tempfile.TemporaryDirectory() as tmp:
        engine = open_engine(sqlite_url(Path(tmp) / "graph.db"))
        graph = TemporalGraph(engine, embedder, RuleExtractor(), FrozenClock(NOW))
        start = time.perf_counter()
        for i, (text, when) in enumerate(messages):
            graph.ingest(text, f"n{i}", Scope(user_id="u1"), when)
        seconds = time.perf_counter() - start
        engine.dispose()
    return seconds


def deterministic(name: str, messages: list[tuple[str, datetime]], embedder) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        mem = Engram(Path(tmp) / "bench.db", embedder=embedder, clock=FrozenClock(NOW), workers=0)
        start = time.perf_counter()
        for text, when in messages:
            mem.add(text, user_id="u1", timestamp=when)
        note_s = time.perf_counter() - start
        graph_s, ran = drain(mem)
        states = Counter(j.state for j in mem.jobs(limit=1000))
        facts = mem.graph.facts(user_id="u1", include_expired=True)
        contradicts = mem.stats()["links"]
        mem.close()
    alone_s = graph_alone(messages, embedder)
    n = len(messages)
    return {"bench": "graph_job_rules", "conversation": name, "messages": n, "jobs": ran, "job_states": dict(states),
            "note_path_ms_per_msg": round(note_s * 1000 / n, 2), "graph_job_ms_per_msg": round(graph_s * 1000 / n, 2),
            "graph_ingest_alone_ms_per_msg": round(alone_s * 1000 / n, 2),
            "graph_over_note_path": round(graph_s / note_s, 3), "graph_jobs_per_s": round(ran / graph_s, 1),
            "facts": len(facts), "closed_facts": sum(f.invalid_at is not None for f in facts), "links_total": contradicts}


def with_local_engine(messages: list[tuple[str, datetime]], embedder, max_tokens: int) -> list[dict]:
    from inference.local_engine import LocalEngine

    engine = CountingEngine(LocalEngine())
    cfg = EngramConfig(memory=MemoryConfig(enrich=EnrichConfig(max_tokens=max_tokens)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mem = Engram(Path(tmp) / "bench.db", embedder=embedder, clock=FrozenClock(NOW), llm=engine, workers=0, config=cfg)
        start = time.perf_counter()
        for text, when in messages:
            mem.add(text, user_id="u1", timestamp=when)
        note_s = time.perf_counter() - start
        seconds, ran = drain(mem)
        jobs = mem.jobs(limit=1000)
        extractor = mem.graph.extractor.stats
        enrich = mem.enrich_jobs.stats
        n = len(messages)
        graph_calls = engine.calls - enrich["calls"]
        rows.append({"bench": "graph_job_llm", "messages": n, "llm_calls": graph_calls,
                     "llm_calls_per_msg": round(graph_calls / n, 2), "extractor": extractor,
                     "facts": len(mem.graph.facts(user_id="u1", include_expired=True))})
        rows.append({"bench": "local_engine_jobs", "model": engine.model_id, "messages": n, "jobs": ran,
                     "job_states": dict(Counter(f"{j.kind}:{j.state}" for j in jobs)),
                     "note_path_ms_per_msg": round(note_s * 1000 / n, 1), "drain_s": round(seconds, 1),
                     "jobs_per_min": round(ran * 60 / seconds, 2), "s_per_llm_call": round(seconds / engine.calls, 2),
                     "enrich": enrich, "enrich_max_tokens": max_tokens})
        mem.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--llm-messages", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=200)
    args = parser.parse_args()
    from retrieval.embedder import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    embedder.embed(["warm up"])
    for name, messages in (("longmemeval_user_turns", longmemeval(args.messages, user_only=True)),
                           ("fact_dense", fact_dense(args.messages))) if args.messages else ():
        print(json.dumps(deterministic(name, messages, embedder)), flush=True)
    if args.llm_messages:
        for row in with_local_engine(fact_dense(args.llm_messages), embedder, args.max_tokens):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
