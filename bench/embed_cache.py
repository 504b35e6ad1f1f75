"""An embedder wrapper that caches vectors by text hash in a SQLite file (benchmarks only).

Embedding LongMemEval's 60k turns takes most of an hour on this machine; with the cache, a
re-run of a benchmark only embeds texts it has not seen.
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrieval.embedder import Embedder, embed_queries


class CachedEmbedder:
    """Usage: ``CachedEmbedder(MiniLMEmbedder(), Path("bench/.cache/emb.sqlite"))``."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self._key = f"{inner.model_id}:{getattr(inner, 'dtype', 'float32')}"
        self.dim = inner.dim
        path.parent.mkdir(parents=True, exist_ok=True)
        # add_many embeds the next batch on a worker thread while it stores the current one.
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._mutex = threading.Lock()
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (model TEXT, key TEXT, vec BLOB, PRIMARY KEY (model, key))")
        self.hits = 0
        self.misses = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._mutex:
            return self._embed(texts, self.inner.embed, self._key)

    def embed_query(self, texts: list[str]) -> np.ndarray:
        """Queries through the inner embedder's query encoder, cached apart from stored texts'."""
        with self._mutex:
            return self._embed(texts, lambda part: embed_queries(self.inner, part),
                               f"{self._key}:query-{getattr(self.inner, 'query_forward', 'same')}")

    def _embed(self, texts: list[str], run: Callable[[list[str]], np.ndarray], model_key: str) -> np.ndarray:
        keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
        found = self._lookup(keys, model_key)
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            fresh = run([texts[i] for i in missing])
            rows = [(model_key, keys[i], fresh[j].tobytes()) for j, i in enumerate(missing)]
            self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?)", rows)
            self._db.commit()
            found.update({keys[i]: fresh[j] for j, i in enumerate(missing)})
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        out = np.stack([found[k] for k in keys]) if texts else np.zeros((0, self.dim), np.float32)
        return out.astype(np.float32)

    def _lookup(self, keys: list[str], model_key: str) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            sql = f"SELECT key, vec FROM emb WHERE model = ? AND key IN ({marks})"
            for key, blob in self._db.execute(sql, [model_key, *part]):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found
