"""Tokenisation for BM25: the same rules as bm25s (word regex, English stopwords, Snowball stems)."""
from __future__ import annotations

import re

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


class Tokenizer:
    """Lowercase word tokens of two or more characters, stopwords removed, stemmed (cached)."""

    def __init__(self, language: str = "english", stopwords: frozenset[str] | None = None) -> None:
        self._stemmer = Stemmer.Stemmer(language)
        self._stops = frozenset(STOPWORDS_EN) if stopwords is None else stopwords
        self._cache: dict[str, str] = {}

    def tokenize(self, text: str) -> list[str]:
        """Usage: ``Tokenizer().tokenize("Running shoes")`` → ``["run", "shoe"]``."""
        words = [w for w in _TOKEN.findall(text.lower()) if w not in self._stops]
        return [self._stem(w) for w in words]

    def tokenize_many(self, texts: list[str]) -> list[list[str]]:
        return [self.tokenize(t) for t in texts]

    def _stem(self, word: str) -> str:
        stem = self._cache.get(word)
        if stem is None:
            stem = self._cache[word] = self._stemmer.stemWord(word)
        return stem
