"""Incremental BM25 over catalog rows.

bm25s (which we use as the reference in tests) builds an immutable index, and rebuilding 100k
notes on every insert is not an option for a memory that grows one message at a time; this index
appends postings per term and keeps document frequencies exact under deletes. Scoring follows
bm25s' default ("lucene") variant with the same tokenisation, so both rank identically.
"""
from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass

import numpy as np

from retrieval.terms import Tokenizer


@dataclass(frozen=True)
class BM25Config:
    k1: float = 1.5
    b: float = 0.75


class BM25Index:
    """Usage: ``idx = BM25Index(Tokenizer()); idx.add(["text"]); idx.search("q", 10, mask)``."""

    def __init__(self, tokenizer: Tokenizer, config: BM25Config | None = None) -> None:
        self.tokenizer = tokenizer
        self.config = config or BM25Config()
        self.vocab: dict[str, int] = {}
        self.post_rows: list[array] = []
        self.post_tfs: list[array] = []
        self.df: list[int] = []
        self.doc_len = array("f")
        self.doc_terms: list[array] = []
        self.alive = bytearray()
        self.num_docs = 0
        self.total_len = 0.0

    def __len__(self) -> int:
        return len(self.doc_len)

    def add(self, texts: list[str]) -> None:
        """Append one document per text; rows continue from ``len(self)``."""
        for tokens in self.tokenizer.tokenize_many(texts):
            self._add_doc(tokens)

    def remove(self, row: int) -> None:
        """Forget a row's statistics; its postings stay but are masked out by the caller."""
        if row >= len(self.alive) or not self.alive[row]:
            return
        self.alive[row] = 0
        for tid in self.doc_terms[row]:
            self.df[tid] -= 1
        self.num_docs -= 1
        self.total_len -= self.doc_len[row]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for ``query`` (dead rows included; mask them)."""
        out = np.zeros(len(self), np.float32)
        if self.num_docs == 0:
            return out
        k1, b = self.config.k1, self.config.b
        avgdl = self.total_len / self.num_docs
        lengths = np.frombuffer(self.doc_len, dtype=np.float32)
        for term in dict.fromkeys(self.tokenizer.tokenize(query)):
            tid = self.vocab.get(term)
            if tid is None or self.df[tid] <= 0:
                continue
            rows = np.frombuffer(self.post_rows[tid], dtype=np.int32)
            tfs = np.frombuffer(self.post_tfs[tid], dtype=np.float32)
            idf = math.log(1.0 + (self.num_docs - self.df[tid] + 0.5) / (self.df[tid] + 0.5))
            norm = k1 * (1.0 - b + b * lengths[rows] / avgdl)
            out[rows] += idf * tfs / (tfs + norm)
        return out

    def search(self, query: str, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows (score > 0) allowed by ``mask``; returns (rows, scores) best first."""
        scores = self.scores(query)
        scores[~mask[: len(scores)]] = 0.0
        hits = np.flatnonzero(scores > 0)
        if len(hits) == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        order = hits[np.lexsort((hits, -scores[hits]))]
        return order.astype(np.int64), scores[order]

    def _add_doc(self, tokens: list[str]) -> None:
        row = len(self.doc_len)
        counts = Counter(tokens)
        tids = array("i")
        for term, tf in counts.items():
            tid = self._term_id(term)
            self.post_rows[tid].append(row)
            self.post_tfs[tid].append(float(tf))
            self.df[tid] += 1
            tids.append(tid)
        self.doc_terms.append(tids)
        self.doc_len.append(float(len(tokens)))
        self.alive.append(1)
        self.num_docs += 1
        self.total_len += len(tokens)

    def _term_id(self, term: str) -> int:
        tid = self.vocab.get(term)
        if tid is None:
            tid = self.vocab[term] = len(self.df)
            self.post_rows.append(array("i"))
            self.post_tfs.append(array("f"))
            self.df.append(0)
        return tid


