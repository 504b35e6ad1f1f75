"""The traced MiniLM forward gives the vectors sentence-transformers' eager ``encode`` gives."""
import numpy as np
import pytest

from retrieval.traced_encoder import TracedEncoder

TEXTS = [
    "I moved to Lisbon in March and started learning Portuguese.",
    "ok",
    "Ça va? 東京で寿司を食べました — naïve façade, emoji 🎉 and all.",
    "My sister's birthday is on the 14th; she wants a blue bicycle. " * 40,  # > 256 tokens: truncated
    "",
    "Remind me to call the dentist about the appointment next Tuesday at 3pm.",
    "We adopted a cat named Miso from the shelter.",
    "The quarterly report is due Friday.",
    "sure, sounds good",
    "Her flight lands at 7:40 in the evening, terminal 2.",
    "The garden needs watering twice a week in summer.",
]


def _eager(embedder, texts: list[str]) -> np.ndarray:
    vecs = embedder._model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
    vecs = np.asarray(vecs, dtype=np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def test_the_shared_embedder_runs_the_traced_graph(embedder):
    assert embedder.forward == "torchscript"


@pytest.mark.parametrize("batch_size", [64, 4, 1])
def test_traced_vectors_equal_eager_ones_in_input_order(embedder, batch_size):
    # Small batches make the length-sorted batching and the restoring of input order matter.
    traced = TracedEncoder.build(embedder._model, batch_size)
    assert traced is not None
    got = traced.encode(TEXTS)
    got /= np.linalg.norm(got, axis=1, keepdims=True)
    cosines = (got * _eager(embedder, TEXTS)).sum(axis=1)
    # The eager path pools in the model's dtype (bf16 on bf16 CPUs), the traced one in float32.
    assert cosines.min() > 0.9995, cosines


def test_one_text_and_the_embedders_output_are_normalised_rows(embedder):
    out = embedder.embed(["just one"])
    assert out.shape == (1, embedder.dim) and out.dtype == np.float32
    assert abs(float(np.linalg.norm(out[0])) - 1.0) < 1e-5


def test_a_pipeline_other_than_mean_pooling_is_not_traced(embedder, monkeypatch):
    monkeypatch.setattr(embedder._model[1], "pooling_mode", "cls")
    assert TracedEncoder.build(embedder._model, 64) is None


def test_the_eager_path_stays_available():
    from retrieval.embedder import MiniLMEmbedder

    eager = MiniLMEmbedder(traced=False)
    assert eager.forward == "eager"
    traced = MiniLMEmbedder()
    cosines = (eager.embed(TEXTS) * traced.embed(TEXTS)).sum(axis=1)
    assert cosines.min() > 0.9995, cosines


def test_split_encoding_equals_one_forward_in_input_order(embedder):
    traced = TracedEncoder.build(embedder._model, 4)
    whole = traced.encode(TEXTS)
    for workers in (2, 3):
        split = traced.encode_split(TEXTS, workers)
        cosines = (split * whole).sum(axis=1) / (np.linalg.norm(split, axis=1) * np.linalg.norm(whole, axis=1))
        # Batches of other texts pad differently; bf16 matmuls of other shapes round differently.
        assert cosines.min() > 0.9995, cosines


def test_a_large_input_is_split_over_the_embedders_threads(embedder, monkeypatch):
    calls: list[int] = []
    split = embedder._traced.encode_split

    def recording(texts, workers):  # noqa: ANN001, ANN202
        calls.append(workers)
        return split(texts, workers)

    monkeypatch.setattr(embedder._traced, "encode_split", recording)
    monkeypatch.setattr(embedder, "threads", 2)
    out = embedder.embed(TEXTS * 4)  # ~6,000 characters: over the one-thread limit
    embedder.embed(["a short query"])
    assert calls == [2]
    assert out.shape == (len(TEXTS) * 4, embedder.dim)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_split_embedding_after_the_tokenizer_settings_changed(embedder):
    """sentence-transformers' own encode leaves other padding settings on the shared Rust
    tokenizer; split workers that each tokenised would then both change them at once ("Already
    borrowed"). Tokenising happens on the calling thread."""
    for _ in range(5):
        embedder._model.tokenizer(["x"], padding="max_length", truncation=True, max_length=16)
        out = embedder.embed(TEXTS * 4)
        assert out.shape == (len(TEXTS) * 4, embedder.dim)


@pytest.mark.parametrize("nice", [0, 5])
def test_split_workers_run_below_their_creator(embedder, nice):
    """Bulk embedding yields the cores to the threads that wait on it (add_many's store)."""
    import os
    import threading

    traced = TracedEncoder.build(embedder._model, 64, split_nice=nice)
    assert traced is not None
    traced.encode_split(TEXTS * 8, 2)
    workers = list(traced._pool._threads)  # noqa: SLF001 - the pool's own threads
    assert len(workers) == 2
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert {os.getpriority(os.PRIO_PROCESS, t.native_id) for t in workers} == {min(19, base + nice)}
    traced._pool.shutdown()  # noqa: SLF001
