"""The derived search state: catalog + dense index + BM25, kept in step row by row."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from memory.types import IndexedNote, Scope
from retrieval.bm25 import BM25Config, BM25Index
from retrieval.catalog import Catalog
from retrieval.link_scan import LinkScan
from retrieval.terms import Tokenizer
from retrieval.vector_index import FaissVectorIndex, VectorConfig


@dataclass(frozen=True)
class Candidate:
    """A note found by at least one retriever, with each retriever's score and rank (1-based)."""

    note_id: str
    row: int
    dense: float | None
    dense_rank: int | None
    bm25: float | None
    bm25_rank: int | None
    graph_rank: int | None = None


def shared_ranks(scores: np.ndarray) -> list[int]:
    """1-based ranks of ``scores`` (sorted best first) where equal scores share the best rank of
    their run: a retriever that cannot tell two notes apart must not order them by row, since rows
    follow insertion order and a rebuilt index (rows in id order) would then rank differently from
    the one that grew note by note. Usage: ``shared_ranks(np.array([3., 2., 2., 1.]))`` → [1, 2, 2, 4]."""
    ranks: list[int] = []
    for i, score in enumerate(scores):
        ranks.append(ranks[-1] if i and score == scores[i - 1] else i + 1)
    return ranks


class HybridIndex:
    """Usage: ``idx = HybridIndex(384); idx.add([note], vecs); idx.candidates(qv, "q", mask, 50)``."""

    def __init__(self, dim: int, vector_config: VectorConfig | None = None, bm25_config: BM25Config | None = None,
                 tokenizer: Tokenizer | None = None, scan: LinkScan | None = None) -> None:
        self.dim = dim
        self.catalog = Catalog()
        self.vectors = FaissVectorIndex(dim, vector_config, scan)
        self.bm25 = BM25Index(tokenizer or Tokenizer(), bm25_config)
        self.applied_seq = 0

    def __len__(self) -> int:
        return len(self.catalog)

    def add(self, notes: list[IndexedNote], vectors: np.ndarray) -> list[int]:
        """Index notes (new ones or new versions of indexed ones); returns their rows."""
        assert len(notes) == len(vectors), "one vector per note"
        for note in notes:
            old = self.catalog.kill(note.id)
            if old is not None:
                self.bm25.remove(old)
        rows = [self.catalog.add(n.id, n.scope, n.archived) for n in notes]
        self.vectors.add(vectors)
        self.bm25.add([n.content for n in notes])
        assert len(self.vectors) == len(self.bm25) == self.catalog.num_rows, "row spaces diverged"
        return rows

    def add_stored(self, notes: Iterable[IndexedNote]) -> int:
        """Index notes with the embeddings stored beside them in SQL (rebuild and catch-up)."""
        batch: list[IndexedNote] = []
        count = 0
        for note in notes:
            batch.append(note)
            if len(batch) >= 2048:
                count += self._add_batch(batch)
                batch = []
        return count + (self._add_batch(batch) if batch else 0)

    def remove(self, note_id: str) -> None:
        row = self.catalog.kill(note_id)
        if row is not None:
            self.bm25.remove(row)

    def set_archived(self, note_id: str, archived: bool) -> None:
        self.catalog.set_archived(note_id, archived)

    def contains(self, note_id: str) -> bool:
        return note_id in self.catalog.row_of

    def row_of(self, note_id: str) -> int | None:
        return self.catalog.row_of.get(note_id)

    def mask(self, scope: Scope | None, include_archived: bool = False) -> np.ndarray:
        return self.catalog.mask(scope, include_archived)

    def rows(self, scope: Scope | None, include_archived: bool = False) -> np.ndarray:
        """The rows ``mask`` sets, ascending, without a pass over every row when a scope is given."""
        return self.catalog.rows(scope, include_archived)

    def restrict(self, mask: np.ndarray, note_ids: set[str]) -> np.ndarray:
        """``mask`` limited to the rows of ``note_ids`` (used for metadata filters)."""
        allowed = np.zeros_like(mask)
        rows = [self.catalog.row_of[i] for i in note_ids if i in self.catalog.row_of]
        allowed[rows] = True
        return mask & allowed

    def vectors_of(self, rows: list[int]) -> np.ndarray:
        return self.vectors.vectors(np.asarray(rows, dtype=np.int64))

    def dense(self, query_vec: np.ndarray, k: int, mask: np.ndarray) -> list[tuple[str, float]]:
        """Nearest notes by cosine among ``mask``: [(note_id, similarity)] best first."""
        rows, scores = self.vectors.search(query_vec, k, mask)
        return [(self.catalog.note_ids[r], float(s)) for r, s in zip(rows, scores, strict=True)]

    def dense_among(self, query_vec: np.ndarray, k: int, rows: np.ndarray) -> list[tuple[str, float]]:
        """``dense`` restricted to explicit rows (sorted), e.g. a scope's rows before a new note."""
        found, scores = self.vectors.search_rows(query_vec, k, rows)
        return [(self.catalog.note_ids[r], float(s)) for r, s in zip(found, scores, strict=True)]

    def dense_among_prefixes(self, queries: np.ndarray, k: int, rows: np.ndarray,
                             limits: list[int]) -> list[list[tuple[str, float]]]:
        """``dense_among`` for several queries, query ``j`` among the sorted ``rows`` below ``limits[j]``."""
        return [[(self.catalog.note_ids[r], float(s)) for r, s in zip(found, scores, strict=True)]
                for found, scores in self.vectors.search_prefixes(queries, k, rows, limits)]

    def candidates(self, query_vec: np.ndarray, query: str, mask: np.ndarray, pool: int) -> list[Candidate]:
        """Union of the dense and BM25 top-``pool`` within ``mask``."""
        d_rows, d_scores = self.vectors.search(query_vec, pool, mask)
        b_rows, b_scores = self.bm25.search(query, pool, mask)
        found: dict[int, dict[str, float | int]] = {}
        for row, score, rank in zip(d_rows, d_scores, shared_ranks(d_scores), strict=True):
            found.setdefault(int(row), {}).update(dense=float(score), dense_rank=rank)
        for row, score, rank in zip(b_rows, b_scores, shared_ranks(b_scores), strict=True):
            found.setdefault(int(row), {}).update(bm25=float(score), bm25_rank=rank)
        return [
            Candidate(self.catalog.note_ids[row], row, f.get("dense"), f.get("dense_rank"),  # type: ignore[arg-type]
                      f.get("bm25"), f.get("bm25_rank"))  # type: ignore[arg-type]
            for row, f in found.items()
        ]

    def with_graph(self, cands: list[Candidate], ranked_note_ids: list[str], mask: np.ndarray) -> list[Candidate]:
        """``cands`` plus the graph's ranking of notes (e.g. the source notes of the facts that
        match a query, best first): each gets its ``graph_rank``; a note the text retrievers missed
        joins the pool when ``mask`` allows it (the graph never widens a scope)."""
        ranks: dict[int, int] = {}
        for note_id in ranked_note_ids:
            row = self.catalog.row_of.get(note_id)
            if row is not None and row < len(mask) and mask[row] and row not in ranks:
                ranks[row] = len(ranks) + 1
        out = [replace(c, graph_rank=ranks.pop(c.row, None)) for c in cands]
        out += [Candidate(self.catalog.note_ids[row], row, None, None, None, None, rank) for row, rank in ranks.items()]
        return out

    def _add_batch(self, batch: list[IndexedNote]) -> int:
        usable = [n for n in batch if n.embedding is not None]
        if usable:
            vecs = np.stack([np.frombuffer(n.embedding, dtype=np.float32) for n in usable])  # type: ignore[arg-type]
            self.add(usable, vecs)
        return len(usable)
