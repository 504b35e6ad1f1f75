"""A sentence-transformers text encoder (transformer + mean pooling) run as one TorchScript graph.

Why: in eager mode each of the transformer's ~150 torch ops returns to Python and takes the GIL.
While another thread of the process runs Python (``add_many`` commits one batch while it embeds
the next; a server handles other requests), every op waits for that thread to yield the GIL
(up to ``sys.getswitchinterval()``, 5 ms). A traced graph runs all its ops in C++ with the GIL
released. Measured on a 2-core AMD EPYC (MiniLM, bf16, batches of 256, 3,000 notes): eager 274
notes/s alone and 59 beside a thread looping in Python; traced 335 alone and 154 beside it. One
query, one thread: 14.9 → 8.7 ms p50.

Only the plain pipeline is traced: a ``Transformer`` module, ``Pooling`` in mean mode over all
tokens, and optionally ``Normalize``. Anything else (and a torch that cannot trace) makes
``TracedEncoder.build`` return None, and the caller uses sentence-transformers' own ``encode``.
"""
from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

# Traced with padding in the batch: HF's attention-mask code skips the mask when nothing is
# padded, and a trace keeps only the branch it saw. The masked branch is right for both cases.
_EXAMPLE = ["a short example sentence with a few more words in it", "padded"]

# Texts per batch of a split encode: small, so that workers stay busy to the end (one-thread
# MiniLM on 2,048 notes: 277-278 notes/s in batches of 16, 277-285 of 32, 270-279 of 64), but
# not smaller: a worker takes the GIL a few times per batch, and while add_many's other threads
# run Python each take can wait. 5,120 notes added after 100k, three interleaved pairs: ingest
# 325.0/347.9/334.7 notes/s with 32 against 286.2/312.0/300.6 with 16 (64: not clearly apart
# from 32 in two pairs).
SPLIT_BATCH = 32

# How much lower the split workers' scheduling priority is than the thread that creates them
# (Linux nice levels). A split encode is bulk work (an ingest, a rebuild; a query embeds on its
# own thread), and the threads beside it are what it waits for: add_many's main thread links,
# indexes and commits the previous batch, and at 100k notes that is the slower half of the
# pipeline. At equal priority it got about half a core while two workers ran; at +10 it takes
# the core it needs and the workers fill the rest. 5,120 notes added at 100k on the AMX machine,
# three interleaved pairs: 928/833/912 notes/s against 788/801/727; at 10k no change
# (docs/benchmarks.md, issue 2). Alone, niceness changes nothing: nobody competes.
SPLIT_NICE = 10


class TracedEncoder:
    """Mean-pooled, unnormalised float32 vectors from a traced transformer. Build with ``build``."""

    def __init__(self, graph: Any, tokenizer: Any, max_length: int, batch_size: int,
                 split_nice: int = SPLIT_NICE) -> None:
        self._graph = graph
        self._split_nice = split_nice
        self._tokenizer = tokenizer
        self._max_length = max_length
        self._batch_size = batch_size
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._pool_lock = threading.Lock()

    @classmethod
    def build(cls, model: Any, batch_size: int, split_nice: int = SPLIT_NICE) -> TracedEncoder | None:
        """Trace ``model`` (a SentenceTransformer), or None when its pipeline is not the plain one.
        ``split_nice``: how many nice levels below their creator ``encode_split``'s workers run."""
        if not plain_pipeline(model):
            return None
        try:
            return cls.of(model[0].auto_model, model, batch_size, split_nice)
        except Exception:  # noqa: BLE001 - any failure to trace means "use the eager path"
            return None

    @classmethod
    def of(cls, transformer: Any, model: Any, batch_size: int, split_nice: int = SPLIT_NICE) -> TracedEncoder:
        """``transformer`` (a Hugging Face model, maybe a modified copy of ``model``'s) traced with
        mean pooling, tokenised by ``model``'s tokenizer. Raises whatever tracing raises."""
        encoder = cls(None, model.tokenizer, model.max_seq_length, batch_size, split_nice)
        encoder._graph = _trace(transformer, encoder._tokens(_EXAMPLE))
        return encoder

    def encode(self, texts: list[str]) -> np.ndarray:
        """One row per text, in input order. Longest texts are batched together, as
        sentence-transformers does, so that a batch pads little."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        return self._assemble(len(texts), [self._forward(self._batches(texts, order))])

    def encode_split(self, texts: list[str], workers: int) -> np.ndarray:
        """``encode`` on ``workers`` threads of one torch thread each, which take batches of
        ``SPLIT_BATCH`` texts (longest first) from one queue as they become free.

        Why not one forward on ``workers`` torch threads: those run in lockstep, every op ending
        at a barrier, so when another thread of the process takes a core (``add_many`` committing
        the previous batch) the whole forward waits for the descheduled torch thread. Independent
        one-thread forwards just take turns. Measured on the 2-core EPYC (4,096 notes, batches of
        256, notes/s): alone 416 on two torch threads against 435 split; beside a thread hashing
        in C 223-228 against 285-300; beside a thread looping in Python 177-182 against 251-257.
        Why a queue of small batches, not one fixed share per worker: a worker whose core was
        taken finishes its share late while the other one's core idles; with the queue the other
        worker takes more batches, and the first batch starts while the rest are tokenised.
        bench/embedder.py, split against one forward on two threads in the same run: fixed shares
        438-459 against 341-402 notes/s alone (2026-12-03); a queue of 16-text batches 568-587
        against 407-416 alone, 296-297 against 215-223 beside a Python thread (2026-12-04).
        Texts are tokenised here, on the calling thread: the Rust tokenizer refuses use from two
        threads at once while one of them changes its padding settings ("Already borrowed").
        """
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        pool = self._workers(workers)
        futures = []
        for start in range(0, len(order), SPLIT_BATCH):  # each batch goes out as soon as it is tokenised
            rows = order[start : start + SPLIT_BATCH]
            futures.append(pool.submit(self._forward, [(rows, *self._tokens([texts[i] for i in rows]))]))
        return self._assemble(len(texts), [f.result() for f in futures])

    def _batches(self, texts: list[str], rows: list[int]) -> list[tuple[list[int], Any, Any]]:
        """(rows, token ids, attention mask) per batch of ``rows`` (already in length order)."""
        out = []
        for start in range(0, len(rows), self._batch_size):
            chunk = rows[start : start + self._batch_size]
            out.append((chunk, *self._tokens([texts[i] for i in chunk])))
        return out

    def _forward(self, batches: list[tuple[list[int], Any, Any]]) -> list[tuple[list[int], np.ndarray]]:
        import torch

        with torch.inference_mode():
            return [(rows, self._graph(ids, mask).numpy()) for rows, ids, mask in batches]

    @staticmethod
    def _assemble(count: int, parts: list[list[tuple[list[int], np.ndarray]]]) -> np.ndarray:
        pooled = [p for part in parts for p in part]
        out = np.empty((count, pooled[0][1].shape[1] if pooled else 0), dtype=np.float32)
        for rows, vecs in pooled:
            out[rows] = vecs
        return out

    def _workers(self, workers: int) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None or self._pool_size < workers:
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
                # torch's thread count is per calling thread: each worker runs one-thread forwards.
                self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engram-embed-split",
                                                initializer=_split_worker, initargs=(self._split_nice,))
                self._pool_size = workers
            return self._pool

    def _tokens(self, texts: list[str]) -> tuple[Any, Any]:
        feats = self._tokenizer(texts, padding=True, truncation=True, max_length=self._max_length,
                                return_tensors="pt")
        return feats["input_ids"], feats["attention_mask"]


def _split_worker(nice: int) -> None:
    """A split worker: one torch thread, ``nice`` levels lower priority (see SPLIT_NICE). Linux
    gives each thread its own nice value; where that is not so, or raising it is refused, the
    worker keeps its creator's."""
    import os

    import torch

    torch.set_num_threads(1)
    if nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (AttributeError, OSError):
        pass


def plain_pipeline(model: Any) -> bool:
    """True for a SentenceTransformer that is a transformer, mean pooling and maybe Normalize."""
    names = [type(m).__name__ for m in model]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return False
    pooling = model[1]
    return pooling.pooling_mode in ("mean", ["mean"], ("mean",)) and getattr(pooling, "include_prompt", True) \
        and hasattr(model[0], "auto_model")


def _trace(transformer: Any, example: tuple[Any, Any]) -> Any:
    import torch

    class _MeanPooled(torch.nn.Module):
        """The transformer and its mean pooling in one graph: a split encode's workers then take
        the GIL once per batch, not once per pooling op, while ``add_many``'s other threads run
        Python."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            # In float32: the model may run in bf16, whose sums over 256 tokens keep ~3 digits.
            weights = attention_mask.unsqueeze(-1).float()
            summed = (hidden.float() * weights).sum(dim=1)
            return summed / weights.sum(dim=1).clamp(min=1e-9)

    with warnings.catch_warnings(), torch.inference_mode():
        # torch 2.13 marks torch.jit deprecated; it is pinned, and the trace is checked against
        # the eager model in tests/retrieval/test_traced_encoder.py.
        warnings.simplefilter("ignore")
        return torch.jit.trace(_MeanPooled(transformer).eval(), example, check_trace=False)
