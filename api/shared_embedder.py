"""One embedder shared by the note path and the graph worker, loaded on first use, one call at a time.

The MiniLM tokenizer (a Rust "fast" tokenizer) refuses concurrent use from two threads ("Already
borrowed"), and the worker thread embeds entity names and facts while a caller embeds new notes,
so calls are serialised here. Usage: ``LockedEmbedder(lambda: MiniLMEmbedder()).embed(["hi"])``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from retrieval.embedder import Embedder


class LockedEmbedder:
    """An ``Embedder`` that loads lazily through ``load`` and serialises ``embed`` calls."""

    def __init__(self, load: Callable[[], Embedder]) -> None:
        self._load = load
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._load().model_id

    @property
    def dim(self) -> int:
        return self._load().dim

    def embed(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        with self._lock:
            return model.embed(texts)
