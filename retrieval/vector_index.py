"""Dense vector search over catalog rows: FAISS exact (flat) below a size, HNSW above it.

Labels are catalog rows (0..n-1, append-only). A search takes a boolean row mask: small masks
are searched exactly by gathering their vectors (cheap, and exact even when the index is HNSW);
large masks are passed to FAISS as a bitmap selector.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np


@dataclass(frozen=True)
class VectorConfig:
    """When to switch from exact to HNSW, and the HNSW knobs.

    M=16/efConstruction=40 rather than 32/64: on 26k real MiniLM vectors (LongMemEval turns,
    bench/ann_params.py) recall@10 was 0.996-0.997 against 0.999 while an insert cost 0.70-0.98
    instead of 1.62-1.67 ms (two runs on a busy machine); inserting is most of ingest's own cost
    past the threshold."""

    hnsw_threshold: int = 50_000
    hnsw_m: int = 16
    ef_construction: int = 40
    ef_search: int = 128
    exact_gather_limit: int = 8_192


class VectorIndex(Protocol):
    """What the hybrid index needs of a dense index (FAISS and the exact numpy one agree)."""

    dim: int

    def __len__(self) -> int: ...

    def add(self, vectors: np.ndarray) -> None: ...

    def vectors(self, rows: np.ndarray) -> np.ndarray: ...

    def search(self, query: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def search_rows(self, query: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def search_prefixes(self, queries: np.ndarray, k: int, rows: np.ndarray,
                        limits: list[int]) -> list[tuple[np.ndarray, np.ndarray]]: ...


def top_k_exact(vectors: np.ndarray, rows: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k among ``rows``; returns (rows, scores) best first."""
    if len(rows) == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if 4 * len(rows) >= len(vectors):
        # Most rows: scoring every vector in place beats copying most of the matrix out first.
        return _top_k(rows, (vectors @ query)[rows], k)
    return _top_k(rows, vectors[rows] @ query, k)


def top_k_exact_prefixes(vectors: np.ndarray, rows: np.ndarray, queries: np.ndarray, k: int,
                         limits: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``top_k_exact`` for several queries at once, query ``j`` among the ``rows`` below
    ``limits[j]`` (each note of a batch links to what was stored before it). One gather and one
    matrix product for the batch: gathering a scope's vectors once per note was most of linking's
    cost at 100k notes."""
    if len(rows) == 0 or k <= 0:
        return [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in limits]
    scores = queries @ vectors[rows].T
    ends = np.searchsorted(rows, limits)
    return [_top_k(rows[:end], scores[j, :end], k) for j, end in enumerate(ends)]


def top_k_in_place(vectors: np.ndarray, rows: np.ndarray, queries: np.ndarray, k: int,
                   limits: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``top_k_exact_prefixes`` without the gather: FAISS scores each row where it lies and keeps
    a heap per query. Linking's rows are a scope's, spread over the whole matrix (a user's notes
    among everyone's), and copying them out first cost more than scoring them (100 scopes of
    1,000 rows among 100k: 69-75 ms a batch gathered, 31 ms in place). ``vectors`` must be C-contiguous
    float32; the rows returned are ordered by score, then row, as in ``_top_k``."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    out = []
    for query, end in zip(queries, np.searchsorted(rows, limits), strict=True):
        take = min(k, int(end))
        if take <= 0:
            out.append((np.zeros(0, np.int64), np.zeros(0, np.float32)))
            continue
        scores, found = np.empty(take, np.float32), np.empty(take, np.int64)
        # ld_ids=0: every query reads the same row list, only ``end`` of it.
        faiss.knn_inner_products_by_idx(faiss.swig_ptr(query), faiss.swig_ptr(vectors), faiss.swig_ptr(rows),
                                        vectors.shape[1], 1, len(vectors), int(end), take,
                                        faiss.swig_ptr(scores), faiss.swig_ptr(found), 0)
        order = np.lexsort((found, -scores))
        out.append((found[order], scores[order]))
    return out


def _top_k(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (row, score) pairs, best first, ties broken by row."""
    if len(rows) == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    k = min(k, len(rows))
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.lexsort((rows[part], -scores[part]))]
    return rows[order].astype(np.int64), scores[order].astype(np.float32)


class ExactVectorIndex:
    """A plain numpy index: the reference every other VectorIndex is tested against."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._vecs = np.zeros((0, dim), np.float32)

    def __len__(self) -> int:
        return len(self._vecs)

    def add(self, vectors: np.ndarray) -> None:
        self._vecs = np.vstack([self._vecs, vectors.astype(np.float32)])

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        return self._vecs[rows]

    def search(self, query: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return top_k_exact(self._vecs, np.flatnonzero(mask[: len(self._vecs)]), query, k)

    def search_rows(self, query: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return top_k_exact(self._vecs, rows, query, k)

    def search_prefixes(self, queries: np.ndarray, k: int, rows: np.ndarray,
                        limits: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        return top_k_exact_prefixes(self._vecs, rows, queries, k, limits)


class FaissVectorIndex:
    """FAISS IndexFlatIP that becomes IndexHNSWFlat once it holds ``hnsw_threshold`` vectors."""

    def __init__(self, dim: int, config: VectorConfig | None = None) -> None:
        self.dim = dim
        self.config = config or VectorConfig()
        self._index: faiss.Index = faiss.IndexFlatIP(dim)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def is_hnsw(self) -> bool:
        return isinstance(self._index, faiss.IndexHNSWFlat)

    def add(self, vectors: np.ndarray) -> None:
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        if not self.is_hnsw and len(self) >= self.config.hnsw_threshold:
            self._to_hnsw()

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        return self._all()[rows]

    def search(self, query: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = mask[: len(self)]
        count = int(mask.sum())
        if count == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if count <= self.config.exact_gather_limit:
            return top_k_exact(self._all(), np.flatnonzero(mask), query, k)
        return self._faiss_search(query, min(k, count), mask, count)

    def search_rows(self, query: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like ``search`` for an explicit sorted row list: no pass over every row when it is short."""
        if len(rows) <= self.config.exact_gather_limit:
            return top_k_exact(self._all(), rows, query, k)
        mask = np.zeros(len(self), bool)
        mask[rows] = True
        return self.search(query, k, mask)

    def search_prefixes(self, queries: np.ndarray, k: int, rows: np.ndarray,
                        limits: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """``search_rows`` for several queries, query ``j`` among the sorted ``rows`` below ``limits[j]``."""
        if len(rows) <= self.config.exact_gather_limit:
            return top_k_in_place(self._all(), rows, queries, k, limits)
        ends = np.searchsorted(rows, limits)
        return [self.search_rows(q, k, rows[:end]) for q, end in zip(queries, ends, strict=True)]

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    def load(self, path: Path) -> None:
        self._index = faiss.read_index(str(path))

    def _faiss_search(self, query: np.ndarray, k: int, mask: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        bitmap = np.packbits(mask, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
        if self.is_hnsw:
            # A selective mask leaves fewer reachable neighbours: widen the beam in proportion.
            ef = int(min(4096, max(self.config.ef_search, 2 * k * len(mask) / count)))
            params: faiss.SearchParameters = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        else:
            params = faiss.SearchParameters(sel=selector)
        scores, rows = self._index.search(query.reshape(1, -1).astype(np.float32), k, params=params)
        keep = rows[0] >= 0
        return rows[0][keep].astype(np.int64), scores[0][keep]

    def _all(self) -> np.ndarray:
        """Zero-copy view of every stored vector (the flat storage of either index type)."""
        flat = faiss.downcast_index(self._index.storage) if self.is_hnsw else self._index
        n = int(flat.ntotal)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        return faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim)

    def _to_hnsw(self) -> None:
        hnsw = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = self.config.ef_construction
        hnsw.add(np.array(self._all(), copy=True))
        self._index = hnsw
