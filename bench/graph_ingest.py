"""Graph ingest cost per message with the deterministic extractor, against the note path's embedding.

    python bench/graph_ingest.py               # 200 LongMemEval messages + a fact-dense chat
    python bench/graph_ingest.py --no-embed    # without the MiniLM embedder (resolution stages 1-3)

Baseline in the same run: embedding each message alone with MiniLM, which the note path pays anyway.
Prints one JSON line per (conversation, messages kept).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see README)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graph.extract_rules import RuleExtractor  # noqa: E402
from graph.temporal_graph import TemporalGraph  # noqa: E402
from memory.clock import FrozenClock  # noqa: E402
from memory.database import open_engine, sqlite_url  # noqa: E402
from memory.types import Scope  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "longmemeval_s_dev.json.gz"
CITIES = ["Berlin", "Paris", "Lisbon", "Madrid", "Oslo", "Vienna", "Prague", "Dublin", "Rome", "Athens"]
ORGS = ["Google", "Microsoft", "Airbus", "Siemens", "Spotify", "Equinor", "Nokia", "Philips", "Adidas", "Bosch"]
TEMPLATES = ["I moved to {c} {d}.", "I got a new job at {o} {d}.", "My sister Emma lives in {c}.", "I love {h}.",
             "My friend Tom works at {o} and lives in {c}.", "We went hiking near {c} last weekend.",
             "Can you suggest a good restaurant in {c}?", "I left {o} yesterday.", "My dog Rex hates {h}.",
             "Actually, I live in {c}, not {c2}."]
HOBBIES = ["jazz", "sushi", "cycling", "baking bread", "chess"]
DATES = ["two weeks ago", "last June", "yesterday", "in March", "three months ago"]


def longmemeval(n: int, user_only: bool) -> list[tuple[str, datetime]]:
    out = []
    for item in json.load(gzip.open(DATA)):
        for date, session in zip(item["haystack_dates"], item["haystack_sessions"], strict=True):
            when = datetime.strptime(date[:10] + date[-5:], "%Y/%m/%d%H:%M").replace(tzinfo=UTC)
            for i, msg in enumerate(session):
                if not user_only or msg["role"] == "user":
                    out.append((msg["content"], when + timedelta(seconds=i)))
                if len(out) == n:
                    return out
    return out


def fact_dense(n: int) -> list[tuple[str, datetime]]:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    return [(TEMPLATES[i % 10].format(c=CITIES[(i // 10 + i * 7) % 10], c2=CITIES[(i * 3) % 10],
                                      o=ORGS[(i // 10 + i * 3) % 10], h=HOBBIES[i % 5], d=DATES[i % 5]),
             start + timedelta(days=3 * i)) for i in range(n)]


def measure(name: str, messages: list[tuple[str, datetime]], embedder) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_engine(sqlite_url(Path(tmp) / "bench.db"))  # durable, as deployed
        graph = TemporalGraph(engine, embedder, RuleExtractor(), FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)))
        start = time.perf_counter()
        for i, (text, when) in enumerate(messages):
            graph.ingest(text, f"n{i}", Scope(user_id="u1"), when)
        ms = (time.perf_counter() - start) * 1000 / len(messages)
        assert graph.view.snapshot() == graph.rebuild_view().snapshot()
        facts = graph.facts(user_id="u1", include_expired=True)
        entities = len(graph.entities(user_id="u1"))
        engine.dispose()
    row = {"conversation": name, "messages": len(messages), "embedder": embedder is not None,
           "graph_ingest_ms_per_msg": round(ms, 2), "entities": entities,
           "facts": len(facts), "closed_facts": sum(f.invalid_at is not None for f in facts)}
    if embedder is not None:
        start = time.perf_counter()
        for text, _ in messages:
            embedder.embed([text])
        row["baseline_embed_message_ms"] = round((time.perf_counter() - start) * 1000 / len(messages), 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--no-embed", action="store_true")
    args = parser.parse_args()
    embedder = None
    if not args.no_embed:
        from retrieval.embedder import MiniLMEmbedder

        embedder = MiniLMEmbedder()
        embedder.embed(["warm up"])
    runs = [("longmemeval user turns", longmemeval(args.messages, True)),
            ("longmemeval all turns", longmemeval(args.messages, False)),
            ("hand-written fact-dense", fact_dense(args.messages))]
    for name, messages in runs:
        print(json.dumps(measure(name, messages, embedder)), flush=True)


if __name__ == "__main__":
    main()
