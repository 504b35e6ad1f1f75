"""The MiniLM embedder: small inputs on one thread, large ones on the embedder's thread count
from whichever thread calls, and the caller's own thread count untouched."""
from __future__ import annotations

import threading

import numpy as np
import torch

from retrieval import embedder as embedder_module


def test_small_and_large_inputs_give_the_same_vectors(embedder, monkeypatch):
    texts = ["When did I last go to the dentist?", "My sister's dog is called Pepper."]
    small = embedder.embed(texts)  # one thread
    monkeypatch.setattr(embedder_module, "ONE_THREAD_CHARS", 0)
    wide = embedder.embed(texts)  # the caller's threads
    assert small.shape == (2, embedder.dim) and np.allclose(np.linalg.norm(small, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(small * wide, axis=1))) > 0.999  # bf16 matmuls split differently


def test_the_callers_thread_count_is_restored(embedder):
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        embedder.embed(["a short query"])
        assert torch.get_num_threads() == 2
        embedder.embed(["a long turn " * 400])  # over the one-thread budget: runs as set
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_another_threads_embedding_leaves_this_threads_count(embedder):
    saved = torch.get_num_threads()
    seen: list[int] = []

    def side() -> None:
        seen.append(torch.get_num_threads())
        embedder.embed(["a query from a request thread"])

    try:
        torch.set_num_threads(2)
        worker = threading.Thread(target=side)
        worker.start()
        while worker.is_alive():
            assert torch.get_num_threads() == 2
        worker.join()
        assert seen and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_small_inputs_run_on_one_thread_and_large_ones_on_the_callers(embedder, monkeypatch):
    seen: list[int] = []
    # The forward that runs: the traced graph, or sentence-transformers' encode without it.
    runner = embedder._traced or embedder._model  # noqa: SLF001
    encode = runner.encode

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(torch.get_num_threads())
        return encode(*args, **kwargs)

    monkeypatch.setattr(runner, "encode", recording)
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        embedder.embed(["a short query"])
        embedder.embed(["a long turn " * 400])
    finally:
        torch.set_num_threads(saved)
    assert seen == [1, 2]


def test_a_thread_that_is_not_the_main_one_embeds_on_the_embedders_threads(embedder, monkeypatch):
    """torch starts every new thread at one thread: ``add_many``'s embedding thread and a server's
    request threads embedded on one core while a benchmark's main thread used two."""
    monkeypatch.setattr(embedder, "threads", 2)
    runner = embedder._traced or embedder._model  # noqa: SLF001
    encode = runner.encode
    seen: list[object] = []

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(torch.get_num_threads())
        return encode(*args, **kwargs)

    monkeypatch.setattr(runner, "encode", recording)

    def side() -> None:
        before = torch.get_num_threads()
        embedder.embed(["a long turn " * 400])  # one text: one forward, not split
        seen.append(("after", before, torch.get_num_threads()))

    worker = threading.Thread(target=side)
    worker.start()
    worker.join()
    assert seen[0] == 2
    _, before, after = seen[1]
    assert before == after  # the thread's own count is given back
