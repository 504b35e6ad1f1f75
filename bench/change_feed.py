"""How long until a note written through one process is searchable through another.

Two processes share one database: this one writes notes through an ``Engram`` one at a time;
a second process runs an ``Engram(follow=True)`` and records (wall clock) when each note reaches its
index. Delay = applied - acknowledged (``add`` returned). PostgreSQL follows with LISTEN/NOTIFY
(1 s poll as a safety net); the baseline in the same run is SQLite, where the follower polls
every 100 ms. After the run the reader searches for a sample of notes to show they are found.
Prints one JSON line per backend.

Usage: ``PYTHONPATH=. python bench/change_feed.py --notes 200 --gap-ms 50``
"""
from __future__ import annotations

import os

for _k, _v in {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_k, _v)

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

PG = os.environ.get("ENGRAM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
WORDS = ["harbour", "violin", "glacier", "saffron", "lantern", "orchid", "compass", "meadow", "falcon", "quartz"]


def _reader(url: str, schema: str | None, ready: mp.Queue, want: mp.Queue, out: mp.Queue) -> None:
    from api.engram import Engram

    seen: dict[str, float] = {}
    woke: dict[str, float] = {}
    mem = Engram(database_url=url, db_schema=schema, follow=True, workers=0)
    mem.embedder.embed(["warm up"])
    # Split the delay: when the follower's wait returned (notification or poll) vs when the batch
    # was in the index. Wrapping the signal's wait is a measurement hook, not product code.
    signal, last_wake = mem.follower.signal, [0.0]
    inner_wait = signal.wait

    def timed_wait(timeout: float) -> bool:
        got = inner_wait(timeout)
        last_wake[0] = time.time()
        return got

    signal.wait = timed_wait

    def on_applied(ids: list[str], t: float) -> None:
        for i in ids:
            if i not in seen:
                seen[i], woke[i] = t, last_wake[0]

    mem.follower.add_listener(on_applied)
    ready.put(True)
    sample = want.get(timeout=900)  # the writer is done
    found = {}
    for query, note_id in sample:
        found[note_id] = [h.id for h in mem.search(query, user_id="bench", top_k=3)][:1] == [note_id]
    out.put({"seen": seen, "woke": woke, "found": found})
    mem.close()


def run(backend: str, notes: int, gap: float) -> dict:
    from api.engram import Engram

    ctx = mp.get_context("spawn")
    tmp = tempfile.mkdtemp(prefix="engram-feed-")
    schema = f"bench_feed_{uuid.uuid4().hex[:8]}" if backend == "postgresql" else None
    url = PG if backend == "postgresql" else f"sqlite:///{Path(tmp) / 'feed.db'}"
    writer = Engram(database_url=url, db_schema=schema, workers=0)
    writer.embedder.embed(["warm up"])
    ready, want, out = ctx.Queue(), ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_reader, args=(url, schema, ready, want, out))
    proc.start()
    ready.get(timeout=300)
    acks: dict[str, tuple[float, float]] = {}
    texts: dict[str, str] = {}
    for i in range(notes):
        text = f"note {i}: the {WORDS[i % len(WORDS)]} number {i} belongs to bench user {i * 7919 % 1000}"
        start = time.time()
        (note,) = writer.add(text, user_id="bench")
        acks[note.id] = (start, time.time())
        texts[note.id] = text
        time.sleep(gap)
    time.sleep(1.5)  # several poll intervals: the last notes arrive too
    sample = list(texts.items())[-20:]
    want.put([(text, nid) for nid, text in sample])
    result = out.get(timeout=600)
    proc.join(60)
    writer.close()
    if schema is not None:
        _drop(schema)
    seen = result["seen"]
    delays = sorted((seen[nid] - ack) * 1000 for nid, (_, ack) in acks.items() if nid in seen)
    from_start = sorted((seen[nid] - st) * 1000 for nid, (st, _) in acks.items() if nid in seen)
    wake = sorted((result["woke"][nid] - ack) * 1000 for nid, (_, ack) in acks.items() if nid in seen)
    apply = sorted((seen[nid] - result["woke"][nid]) * 1000 for nid in acks if nid in seen)
    return {"bench": "change_feed", "backend": backend, "follow": "listen_notify" if schema else "poll_100ms",
            "notes": notes, "gap_ms": gap * 1000, "applied": len(delays),
            "delay_ms_p50": round(_pct(delays, 50), 1), "delay_ms_p95": round(_pct(delays, 95), 1),
            "delay_ms_max": round(max(delays), 1),
            "wake_after_ack_ms_p50": round(_pct(wake, 50), 1), "apply_after_wake_ms_p50": round(_pct(apply, 50), 1),
            "from_write_start_ms_p50": round(_pct(from_start, 50), 1),
            "search_found_sample": f"{sum(result['found'].values())}/{len(result['found'])}"}


def _pct(values: list[float], p: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def _drop(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=200)
    ap.add_argument("--gap-ms", type=float, default=50.0, help="pause between writes")
    ap.add_argument("--backends", default="postgresql,sqlite")
    args = ap.parse_args()
    rows = [run(b, args.notes, args.gap_ms / 1000) for b in args.backends.split(",")]
    for row in rows:
        print(json.dumps(row), flush=True)
    if len(rows) == 2:
        print(json.dumps({"bench": "change_feed", "p50_ratio_sqlite_poll_over_pg_listen":
                          round(rows[1]["delay_ms_p50"] / max(rows[0]["delay_ms_p50"], 1e-3), 1)}))


if __name__ == "__main__":
    main()
