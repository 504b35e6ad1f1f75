"""MiniLM's eager forward against the traced graph (one forward on all threads, or split into
one-thread forwards): batches alone, batches beside a thread that runs Python (as ``add_many``'s
committing thread does, or a server's other requests), one query.

    python bench/embedder.py                # 3,000 notes in batches of 256, 200 queries

Prints one JSON line per (forward, load).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see README)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import synthetic  # noqa: E402
from retrieval.embedder import MiniLMEmbedder  # noqa: E402


@contextmanager
def python_busy() -> Iterator[None]:
    """A second thread looping in pure Python for the duration (it holds the GIL whenever it runs)."""
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            for i in range(1000):
                x += i

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def batch_rate(embed: Callable[[list[str]], np.ndarray], texts: list[str], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        embed(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - start)


def query_ms(embed: Callable[[list[str]], np.ndarray], queries: list[str]) -> tuple[float, float]:
    times = []
    for q in queries:
        start = time.perf_counter()
        embed([q])
        times.append((time.perf_counter() - start) * 1000)
    return round(float(np.percentile(times, 50)), 2), round(float(np.percentile(times, 95)), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    texts, queries = synthetic.notes(args.notes), synthetic.questions(args.queries)
    embedders = {"eager": MiniLMEmbedder(traced=False), "torchscript_one_forward": MiniLMEmbedder(split=False),
                 "torchscript": MiniLMEmbedder()}
    for e in embedders.values():
        e.embed(texts[:64])  # warm-up
    # Interleaved, twice, so that a slow spell of the machine hits both forwards.
    for round_ in (1, 2):
        for name, e in embedders.items():
            alone = batch_rate(e.embed, texts, args.batch)
            with python_busy():
                beside = batch_rate(e.embed, texts, args.batch)
            p50, p95 = query_ms(e.embed, queries)
            print(json.dumps({"forward": name, "round": round_, "dtype": e.dtype, "notes_s": round(alone, 1),
                              "notes_s_beside_python": round(beside, 1), "query_p50_ms": p50, "query_p95_ms": p95,
                              "loadavg_1m": os.getloadavg()[0]}), flush=True)


if __name__ == "__main__":
    main()
