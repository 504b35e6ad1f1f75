"""Dense vector search over catalog rows: exact below a size, an inverted file (retrieval/ivf.py) above it.

Labels are catalog rows (0..n-1, append-only). A search takes a boolean row mask: small masks
are searched exactly by gathering their vectors (cheap, and exact at any size); large ones are
scored in place below the size, and through the inverted file above it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

from retrieval.grow import GrowArray
from retrieval.ivf import CodedIVF
from retrieval.link_scan import LinkScan, RowCodes


@dataclass(frozen=True)
class VectorConfig:
    """When to switch from exact search to the inverted file, and its knobs.

    ``ivf_probe`` lists of ``ivf_lists`` are read for a mask holding every row (more for a
    selective mask), and the best ``ivf_rescore`` beyond k by code are scored again from the
    floats. Chosen on real MiniLM vectors (docs/benchmarks.md, "Vector index settings")."""

    ann_threshold: int = 50_000
    ivf_lists: int = 256
    ivf_probe: int = 64
    ivf_rescore: int = 32
    exact_gather_limit: int = 8_192
    # linking scans 8-bit codes of the rows (retrieval/link_scan.py) where a C compiler exists
    link_codes: bool = True


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
    """The float vectors in one growing matrix (rows never move), searched exactly, plus a
    ``CodedIVF`` over them once they number ``ann_threshold``.

    The matrix is a ``GrowArray`` (capacity doubles): FAISS's flat index copied its whole storage
    on every add, 3.5 ms a batch of 256 at 100k vectors (0.014 ms a vector, growing with the index).

    With a ``LinkScan`` (a compiled kernel, see retrieval/link_scan.py), every row also keeps 8-bit
    codes, and ``search_prefixes`` (linking) scans those instead of the floats."""

    def __init__(self, dim: int, config: VectorConfig | None = None, scan: LinkScan | None = None) -> None:
        self.dim = dim
        self.config = config or VectorConfig()
        self._vecs = GrowArray(np.float32, width=dim)
        self.ann: CodedIVF | None = None
        self._scan = scan
        self._codes = RowCodes(dim) if scan is not None else None

    def __len__(self) -> int:
        return self._vecs.size

    @property
    def kind(self) -> str:
        """What serves large masks: "ivf" once the inverted file is trained, else "exact"."""
        return "exact" if self.ann is None else "ivf"

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        first = len(self)
        self._vecs.extend(vectors)
        if self._codes is not None:
            self._codes.extend(vectors)
        if self.ann is not None:
            self.ann.add(vectors, first)
        elif len(self) >= self.config.ann_threshold:
            self._train_ann()

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        return self._all()[rows]

    def search(self, query: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = mask[: len(self)]
        count = int(mask.sum())
        if count == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if count <= self.config.exact_gather_limit:
            return top_k_exact(self._all(), np.flatnonzero(mask), query, k)
        if self.ann is not None:
            found = self.ann.candidates(query, k, mask, count)
            if len(found) >= min(k, count):
                return top_k_exact(self._all(), found, query, k)
            # The probed lists held fewer rows of the mask than asked for: score them all.
        rows = np.flatnonzero(mask)
        return top_k_in_place(self._all(), rows, query.reshape(1, -1), k, [len(self)])[0]

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
            if self._scan is not None and self._codes is not None:
                return self._scan.top_k(self._codes, self._all(), rows, queries, k, limits)
            return top_k_in_place(self._all(), rows, queries, k, limits)
        ends = np.searchsorted(rows, limits)
        return [self.search_rows(q, k, rows[:end]) for q, end in zip(queries, ends, strict=True)]

    def save(self, path: Path) -> None:
        """One uncompressed .npz: the float vectors and, once trained, the inverted file."""
        arrays = {"vectors": self._all()}
        if self.ann is not None:
            arrays["ivf"] = self.ann.to_bytes()
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    def load(self, path: Path) -> None:
        """Read what ``save`` wrote; a FAISS file of the earlier format (a flat or HNSW index)
        is read too, its vectors kept and the inverted file trained from them."""
        if path.suffix == ".faiss":
            self._load_faiss(path)
            return
        with np.load(path, allow_pickle=False) as z:
            vectors = z["vectors"]
            ivf = z["ivf"] if "ivf" in z.files else None
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"saved vectors have shape {vectors.shape}, expected (n, {self.dim})")
        self._vecs.load(vectors)
        self._load_codes()
        cfg = self.config
        self.ann = None if ivf is None else CodedIVF.from_bytes(ivf, cfg.ivf_probe, cfg.ivf_rescore)
        if self.ann is not None and len(self.ann) != len(self):
            raise ValueError(f"saved inverted file holds {len(self.ann)} rows, the vectors {len(self)}")
        if self.ann is None and len(self) >= cfg.ann_threshold:
            self._train_ann()

    def _load_faiss(self, path: Path) -> None:
        index = faiss.read_index(str(path))
        flat = faiss.downcast_index(index.storage) if isinstance(index, faiss.IndexHNSW) else index
        if not isinstance(flat, faiss.IndexFlat) or flat.d != self.dim:
            raise ValueError(f"{path.name}: not a flat or HNSW index of dimension {self.dim}")
        n = int(flat.ntotal)
        self._vecs.load(faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim) if n else self._all()[:0])
        self._load_codes()
        self.ann = None
        if n >= self.config.ann_threshold:
            self._train_ann()

    def _load_codes(self) -> None:
        # derived from the floats on load, not saved: 0.09-0.11 s at 100k rows, and no format change
        if self._codes is not None:
            self._codes.load(self._all())

    def _train_ann(self) -> None:
        """Train on the first ``ann_threshold`` rows whatever the batches were, then add every row."""
        cfg = self.config
        self.ann = CodedIVF.trained(self._all()[: cfg.ann_threshold], cfg.ivf_lists, cfg.ivf_probe, cfg.ivf_rescore)
        self.ann.add(self._all(), 0)

    def _all(self) -> np.ndarray:
        """Every stored vector, as a view (C-contiguous: the in-place kernels need it)."""
        return self._vecs.view
