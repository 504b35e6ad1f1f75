"""Vector index settings on real MiniLM vectors: insert cost, search cost, recall@10 and @100 against exact.

Reads the vectors that bench/retrieval_quality.py cached (LongMemEval turns), so run that first
(``--limit 60`` caches ~29k). The exact flat index in the same run is the baseline; HNSW (what
Engram used before) and the shipped inverted file (``retrieval/vector_index.py``, through its own
search, rescoring included) are measured beside it. @100 is the depth of the dense candidate pool
a search ranks. One JSON line per setting:

    python bench/ann_params.py
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json  # noqa: E402
import sqlite3  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from retrieval.vector_index import FaissVectorIndex, VectorConfig  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache" / "embeddings.sqlite"
QUERIES = 300


def load() -> np.ndarray:
    db = sqlite3.connect(f"file:{CACHE}?mode=ro", uri=True)
    vecs = np.stack([np.frombuffer(v, np.float32) for (v,) in db.execute("SELECT vec FROM emb")])
    np.random.default_rng(0).shuffle(vecs)
    return vecs


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth, strict=True)]))


def timed_search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    _, found = index.search(queries, k)
    return found, (time.perf_counter() - start) / len(queries) * 1e3


def timed_engram(index: FaissVectorIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Searches through Engram's own index, every row in the mask (the whole-corpus case)."""
    mask = np.ones(len(index), bool)
    start = time.perf_counter()
    found = [index.search(q, k, mask)[0] for q in queries]
    return np.array(found), (time.perf_counter() - start) / len(queries) * 1e3


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
    truth = {k: timed_search(flat, queries, k) for k in (10, 100)}
    print(json.dumps({"index": "flat", "vectors": len(base), "add_ms": round(add_ms, 4),
                      "search_ms": round(truth[10][1], 3), "recall@10": 1.0, "recall@100": 1.0}), flush=True)
    hnsw = faiss.IndexHNSWFlat(base.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    add_ms = timed_add(hnsw, base)
    hnsw.hnsw.efSearch = 128
    found = {k: timed_search(hnsw, queries, k) for k in (10, 100)}
    print(json.dumps({"index": "hnsw", "M": 16, "efConstruction": 40, "efSearch": 128, "vectors": len(base),
                      "add_ms": round(add_ms, 4), "search_ms": round(found[10][1], 3),
                      "recall@10": round(recall(found[10][0], truth[10][0]), 4),
                      "recall@100": round(recall(found[100][0], truth[100][0]), 4)}), flush=True)
    shipped = VectorConfig()
    for lists, probe in ((128, 32), (256, 32), (256, 48), (shipped.ivf_lists, shipped.ivf_probe), (256, 96), (512, 128)):
        cfg = VectorConfig(ann_threshold=len(base) // 2, ivf_lists=lists, ivf_probe=probe)
        index = FaissVectorIndex(base.shape[1], cfg)
        index.add(base[: len(base) // 2])  # trains the inverted file on these
        start = time.perf_counter()
        for i in range(len(base) // 2, len(base), 256):
            index.add(base[i : i + 256])
        add_ms = (time.perf_counter() - start) / (len(base) - len(base) // 2) * 1e3
        found = {k: timed_engram(index, queries, k) for k in (10, 100)}
        print(json.dumps({"index": "ivf-sq8", "lists": index.ann.lists, "probe": probe, "rescore": cfg.ivf_rescore,
                          "shipped": (lists, probe) == (shipped.ivf_lists, shipped.ivf_probe), "vectors": len(base),
                          "add_ms": round(add_ms, 4), "search_ms": round(found[10][1], 3),
                          "search_ms@100": round(found[100][1], 3),
                          "recall@10": round(recall(found[10][0], truth[10][0]), 4),
                          "recall@100": round(recall(found[100][0], truth[100][0]), 4)}), flush=True)


if __name__ == "__main__":
    main()
