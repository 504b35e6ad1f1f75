"""Our incremental BM25 against bm25s (the field's library) on real text, plus incremental behaviour."""
import gzip
import json

import bm25s
import numpy as np
import pytest
import Stemmer

from retrieval.bm25 import BM25Index
from retrieval.terms import Tokenizer
from tests.helpers import SHARED_DATA


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    with gzip.open(SHARED_DATA / "longmemeval_s_dev.json.gz", "rt") as fh:
        question = json.load(fh)[0]
    return [t["content"] for s in question["haystack_sessions"] for t in s][:400]


def _bm25s_scores(corpus: list[str], query: str) -> np.ndarray:
    stemmer = Stemmer.Stemmer("english")
    ret = bm25s.BM25()
    ret.index(bm25s.tokenize(corpus, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    q = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, show_progress=False)
    inverse = {v: k for k, v in q.vocab.items()}
    return ret.get_scores([inverse[i] for i in q.ids[0]])


@pytest.mark.parametrize("query", ["recommend a good restaurant for dinner", "how many hours did I work out",
                                   "travel itinerary for Japan", "my sister's birthday gift"])
def test_scores_equal_bm25s_on_real_chat_text(corpus, query):
    ours = BM25Index(Tokenizer())
    ours.add(corpus)
    np.testing.assert_allclose(ours.scores(query), _bm25s_scores(corpus, query), rtol=1e-5, atol=1e-6)


def test_incremental_adds_equal_one_shot_index(corpus):
    one = BM25Index(Tokenizer())
    one.add(corpus)
    inc = BM25Index(Tokenizer())
    for i in range(0, len(corpus), 37):
        inc.add(corpus[i : i + 37])
    np.testing.assert_allclose(inc.scores("favorite coffee shop"), one.scores("favorite coffee shop"), rtol=1e-6)


def test_remove_keeps_statistics_exact(corpus):
    full = BM25Index(Tokenizer())
    full.add(corpus)
    for row in range(0, 100):
        full.remove(row)
    rest = BM25Index(Tokenizer())
    rest.add(corpus[100:])
    np.testing.assert_allclose(full.scores("weekend hiking trip")[100:], rest.scores("weekend hiking trip"), rtol=1e-5)


def test_search_respects_mask_and_orders_by_score():
    idx = BM25Index(Tokenizer())
    idx.add(["red apple pie", "green apple", "banana bread", "apple apple apple"])
    mask = np.array([True, True, True, False])
    rows, scores = idx.search("apple", 10, mask)
    assert list(rows) == [1, 0] and scores[0] >= scores[1] > 0
    assert len(idx.search("kiwi", 10, np.ones(4, bool))[0]) == 0


def test_custom_stopwords_drop_question_words():
    tok = Tokenizer(stopwords=frozenset({"what", "is", "my"}))
    assert tok.tokenize("What is my dog's name?") == ["dog", "name"]
