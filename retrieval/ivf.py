"""Approximate masked top-k for large indexes: an inverted file (IVF) whose lists hold 8-bit codes,
the best candidates rescored from the float vectors.

It replaced HNSW above the exact-search size. An HNSW insert walks the graph (0.06-0.09 ms of
CPU per vector, about a seventh of the store's CPU per note at 100k notes); an IVF insert is one
small matrix product against the centroids (~0.007 ms). The codes are a quarter of the float vectors' bytes,
and the floats stay where they are (the vector store): rescoring the top candidates from them
makes the scores, and the order among the candidates, exact.

Rows are the vector store's row numbers (the FAISS ids). The centroids are trained once, on the
rows given to ``trained`` (the vector index gives its first ``ann_threshold``), so an index
rebuilt from the same rows in any batch sizes is the same index.
"""
from __future__ import annotations

import math

import faiss
import numpy as np


class CodedIVF:
    """Usage: ``ivf = CodedIVF.trained(vecs[:50_000], lists=256, probe=64, rescore=32)``, then
    ``ivf.add(vecs[i:j], first_row=i)`` and ``ivf.candidates(q, 10, mask, int(mask.sum()))``."""

    def __init__(self, index: faiss.IndexIVFScalarQuantizer, probe: int, rescore: int) -> None:
        self._index = index
        self.probe = probe
        self.rescore = rescore

    @classmethod
    def trained(cls, sample: np.ndarray, lists: int, probe: int, rescore: int) -> CodedIVF:
        """Centroids and code ranges from ``sample`` (about 40 rows per list at least: fewer lists
        when the sample is small)."""
        dim = sample.shape[1]
        lists = max(1, min(lists, len(sample) // 40))
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, lists,
                                              faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 1234  # fixed, so that a rebuild trains the same centroids
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        return cls(index, probe, rescore)

    @classmethod
    def from_bytes(cls, data: np.ndarray, probe: int, rescore: int) -> CodedIVF:
        index = faiss.deserialize_index(np.ascontiguousarray(data, dtype=np.uint8))
        if not isinstance(index, faiss.IndexIVFScalarQuantizer):
            raise ValueError(f"not an IVF index with scalar codes: {type(index).__name__}")
        return cls(index, probe, rescore)

    def to_bytes(self) -> np.ndarray:
        return faiss.serialize_index(self._index)

    @property
    def lists(self) -> int:
        return int(self._index.nlist)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, vectors: np.ndarray, first_row: int) -> None:
        """Add ``vectors`` as rows ``first_row, first_row + 1, ...``."""
        rows = np.arange(first_row, first_row + len(vectors), dtype=np.int64)
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), rows)

    def candidates(self, query: np.ndarray, k: int, mask: np.ndarray, count: int) -> np.ndarray:
        """Rows among ``mask`` (``count`` of them set) that may be its top ``k``: the best ``k +
        rescore`` by code, for the caller to score exactly. A selective mask leaves fewer of its
        rows in the nearest lists: more lists are probed, in proportion, up to all of them."""
        probe = min(self.lists, math.ceil(self.probe * len(mask) / max(count, 1)))
        bitmap = np.packbits(mask, bitorder="little")
        params = faiss.SearchParametersIVF(sel=faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap)),
                                           nprobe=probe)
        want = min(count, k + self.rescore)
        _, found = self._index.search(query.reshape(1, -1).astype(np.float32), want, params=params)
        return np.sort(found[0][found[0] >= 0])
