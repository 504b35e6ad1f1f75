"""The int8 query encoder: near the float32 vectors, ranks stored notes as float32 queries do,
leaves the float32 model alone, and is what searches use."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from retrieval import embedder as embedder_module
from retrieval.embedder import MiniLMEmbedder, embed_queries
from tests.helpers import SHARED_DATA


@pytest.fixture(scope="module")
def f32() -> MiniLMEmbedder:
    """MiniLM in float32 with the int8 query encoder, on any CPU (auto picks it without bf16)."""
    return MiniLMEmbedder(dtype="float32", query_int8=True)


@pytest.fixture(scope="module")
def haystacks() -> list[dict]:
    with gzip.open(SHARED_DATA / "longmemeval_s_dev.json.gz", "rt") as fh:
        return json.load(fh)[:40]


def test_query_vectors_stay_near_the_float32_ones(f32, haystacks):
    questions = [h["question"] for h in haystacks]
    exact = np.concatenate([f32.embed([q]) for q in questions])
    fast = np.concatenate([f32.embed_query([q]) for q in questions])
    cos = np.sum(exact * fast, axis=1)
    assert f32.query_forward == "int8-dynamic"
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert cos.min() > 0.95 and cos.mean() > 0.97, (cos.min(), cos.mean())
    assert cos.max() < 0.99999  # really the int8 path, not the float32 one under another name


def test_queries_find_the_notes_float32_queries_find(f32, haystacks):
    """Dense top-10 over each question's own haystack (its first 60 user turns, cut to 200
    characters: float32 MiniLM on long turns is slow on a bf16 CPU), int8 against float32 query."""
    overlaps = []
    for h in haystacks[:10]:
        turns = [t["content"][:200] for s in h["haystack_sessions"] for t in s if t["role"] == "user"][:60]
        docs = f32.embed(turns)
        exact = np.argsort(-(docs @ f32.embed([h["question"]])[0]))[:10]
        fast = np.argsort(-(docs @ f32.embed_query([h["question"]])[0]))[:10]
        overlaps.append(len(set(exact) & set(fast)) / 10)
    assert np.mean(overlaps) >= 0.8, overlaps


def test_building_it_leaves_the_float32_model_as_it_was(f32):
    """The int8 copy shares the embedding table; quantizing must not touch the shared modules."""
    texts = ["My sister's dog is called Pepper.", "When did I last go to the dentist?"]
    plain = MiniLMEmbedder(dtype="float32", query_int8=False)
    assert plain.query_encoder is None and plain.query_forward == plain.forward
    assert np.array_equal(plain.embed(texts), f32.embed(texts))
    assert np.array_equal(plain.embed_query(texts), plain.embed(texts))


def test_large_inputs_and_stored_texts_go_through_the_float32_model(f32, monkeypatch):
    monkeypatch.setattr(embedder_module, "ONE_THREAD_CHARS", 10)
    texts = ["a question longer than ten characters"]
    assert np.array_equal(f32.embed_query(texts), f32.embed(texts))


def test_bf16_models_keep_one_encoder_and_bad_settings_are_refused():
    bf16 = MiniLMEmbedder(dtype="bfloat16")  # query_int8="auto"
    assert bf16.query_encoder is None and bf16.query_forward == bf16.forward
    with pytest.raises(ValueError, match="query_int8"):
        MiniLMEmbedder(dtype="float32", query_int8="yes")


def test_embed_queries_falls_back_to_embed_for_other_embedders():
    class Plain:
        model_id, dim = "plain", 2

        def embed(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 2), dtype=np.float32)

    assert embed_queries(Plain(), ["a", "b"]).shape == (2, 2)


def test_a_search_embeds_its_query_with_the_query_encoder(f32, tmp_path):
    from api.engram import Engram

    calls: list[tuple[str, list[str]]] = []

    class Recording:
        model_id, dim, dtype = f32.model_id, f32.dim, f32.dtype

        def embed(self, texts: list[str]) -> np.ndarray:
            calls.append(("embed", list(texts)))
            return f32.embed(texts)

        def embed_query(self, texts: list[str]) -> np.ndarray:
            calls.append(("embed_query", list(texts)))
            return f32.embed_query(texts)

    with Engram(tmp_path / "e.db", embedder=Recording(), workers=0) as mem:
        mem.add("I adopted a grey cat called Miso.", user_id="u")
        calls.clear()
        hits = mem.search("What is my cat called?", user_id="u")
    assert hits and "Miso" in hits[0].content
    assert ("embed_query", ["What is my cat called?"]) in calls
    assert all(kind == "embed_query" for kind, _ in calls)
