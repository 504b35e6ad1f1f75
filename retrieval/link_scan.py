"""Linking's scan from 8-bit codes (link_scan.c): each new note's nearest earlier rows of its scope.

A note is linked against every earlier note of its scope, rows scattered over the whole matrix;
scored from the float vectors, a batch of 256 notes over 100 users read all 150 MB of them at
100k notes, and that read was the scan's cost (docs/benchmarks.md, issue 2). Here each row is
scored from one byte a dimension, the best ``shortlist(k)`` of those are scored again from the
floats, and the best ``k`` are returned by float score, ties by row, like the exact scan. The codes
cost 388 bytes a row beside the vectors' 1,536.

Usage::

    codes = RowCodes(384); codes.extend(vectors)
    scan = LinkScan(library_path)          # the library is built by the caller (api/native_scan.py)
    found = scan.top_k(codes, vectors_matrix, rows, queries, k, limits)   # [(rows, scores)] per query
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from retrieval.grow import GrowArray

SOURCE = Path(__file__).with_name("link_scan.c")
# Candidates kept per query by code, then scored again from the floats. For 9,360 real chat turns
# (MiniLM, LongMemEval, each linked against the up to 400 turns before it in its haystack) the
# exact top 5 was always within the top 7 by code; for 1,024 synthetic notes in 1,000-note scopes,
# within the top 8. Each candidate is a cold 1.5 kB float row, so the list is kept short.
SHORTLIST_MIN = 10


def shortlist(k: int) -> int:
    """How many candidates by code are scored again from the floats for a top ``k``."""
    return max(SHORTLIST_MIN, 2 * k)


def encode(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows as (uint8 codes, float32 scales): x ≈ (code - 128) * scale, scale = max|x| / 127."""
    vectors = np.asarray(vectors, dtype=np.float32)
    top = np.abs(vectors).max(axis=1) if vectors.size else np.zeros(len(vectors), np.float32)
    scales = np.where(top > 0, top / 127, 1).astype(np.float32)
    codes = np.rint(vectors / scales[:, None]) + 128
    return np.clip(codes, 1, 255).astype(np.uint8), scales


class RowCodes:
    """The codes and scales of the vector matrix's rows, appended as it grows (rows never move)."""

    def __init__(self, dim: int) -> None:
        self.codes = GrowArray(np.uint8, width=dim)
        self.scales = GrowArray(np.float32)

    def extend(self, vectors: np.ndarray) -> None:
        codes, scales = encode(vectors)
        self.codes.extend(codes)
        self.scales.extend(scales)

    def load(self, vectors: np.ndarray, chunk: int = 8192) -> None:
        """Codes of every row of ``vectors``, computed in chunks (no full-size float temporaries)."""
        self.codes.load(np.zeros((0, vectors.shape[1]), np.uint8))
        self.scales.load(np.zeros(0, np.float32))
        for start in range(0, len(vectors), chunk):
            self.extend(vectors[start : start + chunk])


class LinkScan:
    """The loaded library. ``top_k`` releases the GIL while it runs (ctypes)."""

    def __init__(self, library: Path) -> None:
        fn = ctypes.CDLL(str(library)).engram_link_topk
        fn.restype = ctypes.c_int
        ptr, i64 = ctypes.c_void_p, ctypes.c_int64
        fn.argtypes = [ptr, ptr, ptr, i64, ptr, i64, ptr, ptr, i64, i64, i64, ptr, ptr]
        self._fn = fn

    def top_k(self, codes: RowCodes, vectors: np.ndarray, rows: np.ndarray, queries: np.ndarray, k: int,
              limits: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each query ``j``, its ``k`` best rows among the sorted ``rows`` below ``limits[j]``
        (rows, float scores), best first, ties by row. ``vectors``: the float matrix the codes encode."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        ends = np.searchsorted(rows, limits).astype(np.int64)
        m, dim = queries.shape
        if m == 0 or k <= 0:
            return [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in range(m)]
        code_rows, scales = codes.codes.view, codes.scales.view
        if not (len(code_rows) == len(scales) == len(vectors) and vectors.shape[1] == dim == code_rows.shape[1]
                and vectors.dtype == np.float32 and vectors.flags.c_contiguous):
            raise ValueError("codes, vectors and queries disagree in rows, width or layout")
        if len(rows) and (rows[0] < 0 or rows[-1] >= len(vectors)):
            raise ValueError("a row is outside the matrix")
        out_rows, out_scores = np.empty((m, k), np.int64), np.empty((m, k), np.float32)
        rc = self._fn(code_rows.ctypes.data, scales.ctypes.data, vectors.ctypes.data, dim, rows.ctypes.data, len(rows),
                      ends.ctypes.data, queries.ctypes.data, m, shortlist(k), k, out_rows.ctypes.data,
                      out_scores.ctypes.data)
        if rc == -2:
            raise MemoryError("link scan: out of memory")
        if rc:
            raise ValueError(f"link scan refused dim={dim} k={k}")
        found = np.minimum(ends, k)
        return [(out_rows[j, :n], out_scores[j, :n]) for j, n in enumerate(found)]
