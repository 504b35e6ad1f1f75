"""One embedder shared by the note path and the graph worker, loaded on first use, one call at a time.

The MiniLM tokenizer (a Rust "fast" tokenizer) refuses concurrent use from two threads ("Already
borrowed"), and the worker thread embeds entity names and facts while a caller embeds new notes,
so calls are serialised here. Loading is serialised too: two threads loading MiniLM at once race
on transformers' process-wide default dtype while it builds the bf16 model (seen as "mat1 and
mat2 must have the same dtype" in the worker's first graph job). Usage: ``LockedEmbedder(lambda: MiniLMEmbedder()).embed(["hi"])``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from retrieval.embedder import Embedder, embed_queries


class LockedEmbedder:
    """An ``Embedder`` that loads lazily through ``load`` and serialises ``embed`` calls."""

    def __init__(self, load: Callable[[], Embedder]) -> None:
        self._load = load
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        with self._lock:
            return self._load().model_id

    @property
    def dim(self) -> int:
        with self._lock:
            return self._load().dim

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self._load().embed(texts)

    def embed_query(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return embed_queries(self._load(), texts)
