"""HNSW and IVF settings on real MiniLM vectors: insert cost, search cost and recall@10 against exact.

Reads the vectors that bench/retrieval_quality.py cached (LongMemEval turns), so run that first.
The exact flat index in the same run is the baseline. One JSON line per setting:

    python bench/ann_params.py
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json  # noqa: E402
import sqlite3  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache" / "embeddings.sqlite"
QUERIES = 300


def load() -> np.ndarray:
    db = sqlite3.connect(f"file:{CACHE}?mode=ro", uri=True)
    vecs = np.stack([np.frombuffer(v, np.float32) for (v,) in db.execute("SELECT vec FROM emb")])
    np.random.default_rng(0).shuffle(vecs)
    return vecs


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth, strict=True)]))


def timed_search(index: faiss.Index, queries: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    _, found = index.search(queries, 10)
    return found, (time.perf_counter() - start) / len(queries) * 1e3


def timed_add(index: faiss.Index, base: np.ndarray) -> float:
    """Adds the second half of ``base`` after the first, timing the second half per vector."""
    half = len(base) // 2
    index.add(base[:half])
    start = time.perf_counter()
    index.add(base[half:])
    return (time.perf_counter() - start) / (len(base) - half) * 1e3


def main() -> None:
    faiss.omp_set_num_threads(1)
    vecs = load()
    queries, base = vecs[:QUERIES], vecs[QUERIES:]
    flat = faiss.IndexFlatIP(base.shape[1])
    add_ms = timed_add(flat, base)
    truth, search_ms = timed_search(flat, queries)
    print(json.dumps({"index": "flat", "vectors": len(base), "add_ms": round(add_ms, 4),
                      "search_ms": round(search_ms, 3), "recall@10": 1.0}), flush=True)
    for m, efc in ((32, 64), (16, 40)):
        hnsw = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = efc
        add_ms = timed_add(hnsw, base)
        hnsw.hnsw.efSearch = 128
        found, search_ms = timed_search(hnsw, queries)
        print(json.dumps({"index": "hnsw", "M": m, "efConstruction": efc, "efSearch": 128, "vectors": len(base),
                          "add_ms": round(add_ms, 4), "search_ms": round(search_ms, 3),
                          "recall@10": round(recall(found, truth), 4)}), flush=True)
    nlist = int(4 * np.sqrt(len(base)))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(base.shape[1]), base.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(base[: len(base) // 2])
    add_ms = timed_add(ivf, base)
    for nprobe in (8, 16, 32):
        ivf.nprobe = nprobe
        found, search_ms = timed_search(ivf, queries)
        print(json.dumps({"index": "ivf", "nlist": nlist, "nprobe": nprobe, "vectors": len(base),
                          "add_ms": round(add_ms, 4), "search_ms": round(search_ms, 3),
                          "recall@10": round(recall(found, truth), 4)}), flush=True)


if __name__ == "__main__":
    main()
