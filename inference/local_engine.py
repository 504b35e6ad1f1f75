"""LocalEngine: a GGUF Llama model run in-process on the CPU, behind the Engine protocol.

Usage::

    engine = LocalEngine()                       # SmolLM2-135M-Instruct, int4, 2 threads
    engine.generate([{"role": "user", "content": "Name a colour."}], GenerationParams(max_tokens=16))
    for piece in engine.stream("Once upon a time", GenerationParams(max_tokens=32)): ...
    engine.complete_json(messages, {"type": "object", "properties": {...}})

A string prompt is used as raw text; a list of messages is rendered with the model's chat
template. One generation runs at a time per engine (a lock held while a stream is iterated;
other threads wait, the holding thread gets InvalidParams instead of a deadlock): the model owns
one KV cache, and the next prompt's common prefix with what it holds is not prefilled again.

KV-cache reuse (issue 5)::

    engine = LocalEngine(chunk_store=MemoryChunkStore(), prefix_cache_blocks=64, block_size=64)
    prompt = SegmentedPrompt(prefix=system_text, chunks=[note_1, note_2], suffix=question_text)
    s = engine.stream_tokens(prompt, GenerationParams(max_tokens=64), tenant="acme",
                             blend=BlendConfig(ratio=0.15))
    answer = "".join(s)
    s.stats  # CacheStats: prompt_tokens, prefix_hit_tokens, chunk_reused_tokens,
             # chunk_computed_tokens, recomputed_tokens, prefilled_tokens, ttft_ms

- Prefix cache (every prompt): full blocks of ``block_size`` tokens, keyed by a chained hash of
  (parent, tokens, model id, ``tenant``), kept after each generation; a later prompt starting
  with the same blocks restores their KV instead of prefilling them. Exact: same logits.
- Chunk reuse (a ``SegmentedPrompt`` and a ``chunk_store``): each chunk is tokenised alone and
  its KV, computed alone at positions 0.., is stored under ``chunk_key(model_id, quant, tokens, tenant)``;
  at use it is rotated to its position and fixed up by selective recompute (``BlendConfig``:
  ``ratio`` of the chunk tokens recomputed in context; 1.0 = exact, 0 = naive concatenation).
  Without a chunk store a segmented prompt is prefilled in full (prefix cache still applies).
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from inference.blend import BlendConfig
from inference.chat_template import ChatTemplate
from inference.chunk_context import ContextIndex
from inference.chunk_kv import ChunkStore
from inference.engine import Message, Prompt
from inference.errors import GenerationCancelled, InvalidParams
from inference.generator import GenerationStream, Generator, LogitsConstraint
from inference.gguf_file import GGUFFile, default_model_path
from inference.int8_calibration import load_int8_codes
from inference.linear import QUANT_MODES
from inference.model import Transformer
from inference.native import default_machine_cache, load_kernels
from inference.params import GenerationParams
from inference.prefill import SegmentPrefill
from inference.prefix_cache import PrefixCache
from inference.segments import CacheStats, SegmentedPrompt, TokenSegments
from inference.tokenizer import Tokenizer


class LocalEngine:
    """In-process engine over a Llama-architecture GGUF file.

    ``quant``: "int4" (default; Q4_0/Q4_1 kept exactly), "int8" or "fp32" (reference).
    ``threads`` sets torch's intra-op threads for the whole process (prefill);
    ``decode_threads`` those of one-token decode steps (1 by default: see ``Transformer.use_threads``).
    ``chunk_store``: where chunk KV lives (None: segmented prompts are prefilled in full).
    ``prefix_cache_blocks`` x ``block_size`` tokens of prefix cache (0 blocks: none); each
    64-token block of SmolLM2-135M holds 2.9 MB of fp32 K/V. ``blend``: the default selective
    recompute of chunk KV. ``int8_codes`` (quant "int8"): a file of calibrated codes
    (``inference.int8_calibration``, e.g. from ``bench/int8_calibrate.py``; possibly computed in
    rotated bases, which the file carries) instead of round-to-nearest; ``self.int8_rounding``
    says which one the engine runs.
    ``prefill_min_rows``: from how many rows a prefill dequantizes weights for a dense matmul
    instead of running the packed kernel; None (default) measures it on this CPU at load
    (``inference.prefill_path``, ~0.1-0.2 s, then remembered in ``machine_cache``),
    ``self.prefill_min_rows`` holds it.
    ``wide_from_rows``: from how many rows a forward runs on ``threads`` rather than
    ``decode_threads``; None (default) measures it at load like ``prefill_min_rows``
    (``inference.thread_rows``); ``self.wide_from_rows`` holds it.
    ``compute_dtype``: what the quantized modes' prefill matmuls and attention compute in; None
    (default) picks bf16 on CPUs with native bf16 and fp32 elsewhere (``inference.compute_dtype``).
    ``native_dequant``: int4 weights are dequantized for prefill by a small C kernel, built with
    the machine's compiler on first use (``inference.native``); without a compiler, or with False,
    PyTorch does it (same bits, ~4x slower). ``self.native_dequant`` says which runs.
    ``machine_cache``: where what belongs to this machine is kept between processes (default
    ``~/.cache/engram``): the built kernel under ``kernels/`` and the measured prefill crossover
    and thread crossovers in ``prefill_rows.json``.
    """

    def __init__(self, model_path: str | Path | None = None, quant: str = "int4", threads: int = 2, *,
                 decode_threads: int = 1, chunk_store: ChunkStore | None = None, prefix_cache_blocks: int = 32,
                 block_size: int = 64, blend: BlendConfig | None = None, int8_codes: str | Path | None = None,
                 prefill_min_rows: int | None = None, wide_from_rows: int | None = None,
                 native_dequant: bool = True, compute_dtype: torch.dtype | None = None,
                 machine_cache: str | Path | None = None):
        if quant not in QUANT_MODES:
            raise InvalidParams(f"quant must be one of {QUANT_MODES}, got {quant!r}")
        if threads < 1 or decode_threads < 1:
            raise InvalidParams("threads and decode_threads must be >= 1")
        if prefix_cache_blocks < 0 or block_size < 1:
            raise InvalidParams("prefix_cache_blocks must be >= 0 and block_size >= 1")
        if int8_codes is not None and quant != "int8":
            raise InvalidParams(f"int8_codes are for quant 'int8', not {quant!r}")
        if prefill_min_rows is not None and prefill_min_rows < 1:
            raise InvalidParams("prefill_min_rows must be >= 1 (or None to measure it)")
        if wide_from_rows is not None and wide_from_rows < 1:
            raise InvalidParams("wide_from_rows must be >= 1 (or None to measure it)")
        torch.set_num_threads(threads)
        start = time.perf_counter()
        path = Path(model_path) if model_path is not None else default_model_path()
        gf = GGUFFile.open(path)
        self.config = gf.config
        self.tokenizer = Tokenizer.from_gguf(gf.metadata)
        self.template = ChatTemplate.from_gguf(gf.metadata)
        codes, rotation = None, None
        self.int8_rounding = "nearest" if quant == "int8" else None
        if int8_codes is not None:
            codes, rotation, info = load_int8_codes(Path(int8_codes), gf)
            self.int8_rounding = info.get("method", "calibrated")
        self.model = Transformer.from_gguf(gf, quant, codes, rotation)
        if compute_dtype is not None:
            self.model.use_compute(compute_dtype)
        self.model.use_threads(threads, decode_threads)
        machine = Path(machine_cache) if machine_cache is not None else default_machine_cache()
        kernels = load_kernels(machine / "kernels") if native_dequant else None
        self.model.use_native(kernels)  # before the prefill path is measured: it times this dequantizer
        self.native_dequant = kernels is not None
        # where prefill leaves the packed kernel depends on the CPU (inference.prefill_path)
        memo = machine / "prefill_rows.json"
        self.prefill_min_rows = self.model.use_prefill_rows(prefill_min_rows, memo)
        # and so does from how many rows the second thread pays for its wake-ups (inference.thread_rows)
        self.wide_from_rows = self.model.use_wide_rows(wide_from_rows, memo)
        self.quant = quant
        # cached KV is keyed by model_id: calibrated codes compute other KV than round-to-nearest,
        # rotated codes keep rotated values in the cache, and fp32 compute differs from bf16
        self.model_id = (f"local/{path.stem}/{quant}" + ("-calibrated" if codes is not None else "")
                         + ("-rotated" if rotation is not None else "")
                         + ("-fp32compute" if quant != "fp32" and self.model.act_dtype == torch.float32 else ""))
        self.load_seconds = time.perf_counter() - start
        self.chunk_store = chunk_store
        self.context_index = ContextIndex()  # in-context chunk variants, to drop them with their chunk
        self.blend = blend or BlendConfig()
        self.prefix_cache = (PrefixCache(prefix_cache_blocks, block_size, self.model_id)
                             if prefix_cache_blocks else None)
        self._generator = Generator(self.model, self.tokenizer, self.prefix_cache)
        self._lock = threading.Lock()
        self._owner: int | None = None  # thread that holds the lock, to refuse self-deadlock

    def encode_prompt(self, prompt: Prompt | SegmentedPrompt) -> list[int]:
        """Token ids for a raw string, messages rendered with the chat template, or segments."""
        if isinstance(prompt, SegmentedPrompt):
            return self.encode_segments(prompt).ids
        if isinstance(prompt, str):
            return self.tokenizer.encode(prompt)
        if not isinstance(prompt, Sequence):
            raise InvalidParams("prompt must be a string or a list of messages")
        return self.tokenizer.encode(self.template.render(list(prompt)))

    def encode_segments(self, prompt: SegmentedPrompt) -> TokenSegments:
        """Each segment tokenised on its own (so chunk tokens never depend on their neighbours)."""
        enc = self.tokenizer.encode
        chunks = tuple(tuple(enc(c)) for c in prompt.chunks if c)
        return TokenSegments(tuple(enc(prompt.prefix)) if prompt.prefix else (), chunks,
                             tuple(enc(prompt.suffix)) if prompt.suffix else ())

    def count_tokens(self, prompt: Prompt | SegmentedPrompt) -> int:
        return len(self.encode_prompt(prompt))

    def generate(self, prompt: Prompt | SegmentedPrompt, params: GenerationParams | None = None,
                 cancel: threading.Event | None = None, *, tenant: str = "",
                 blend: BlendConfig | None = None) -> str:
        """The whole reply. Raises GenerationCancelled if ``cancel`` is set before the end."""
        s = self.stream_tokens(prompt, params, cancel=cancel, tenant=tenant, blend=blend)
        for _ in s:
            pass
        if s.finish_reason == "cancelled":
            raise GenerationCancelled(f"cancelled after {len(s.token_ids)} tokens")
        return s.text

    def stream(self, prompt: Prompt | SegmentedPrompt, params: GenerationParams | None = None,
               cancel: threading.Event | None = None, *, tenant: str = "",
               blend: BlendConfig | None = None) -> Iterator[str]:
        """Text pieces as they are decoded; stops quietly when ``cancel`` is set."""
        yield from self.stream_tokens(prompt, params, cancel=cancel, tenant=tenant, blend=blend)

    def stream_tokens(self, prompt: Prompt | SegmentedPrompt, params: GenerationParams | None = None,
                      constraint: LogitsConstraint | None = None, cancel: threading.Event | None = None,
                      *, tenant: str = "", blend: BlendConfig | None = None) -> GenerationStream:
        """Like :meth:`stream`, returning the stream object (``finish_reason``, ``token_ids``,
        ``stats``). ``tenant`` salts the prefix-cache keys; ``blend`` overrides the engine's."""
        prefill = None
        if isinstance(prompt, SegmentedPrompt):
            segments = self.encode_segments(prompt)
            ids = segments.ids
            if segments.chunks and self.chunk_store is not None:
                prefill = SegmentPrefill(self.model, segments, self.chunk_store, self.model_id, self.quant,
                                         self.prefix_cache, tenant, blend or self.blend, self.context_index)
        else:
            ids = self.encode_prompt(prompt)
        inner = self._generator.stream(ids, params or GenerationParams(), constraint, cancel,
                                       tenant=tenant, prefill=prefill)
        out = GenerationStream(iter(()))
        out.stats = inner.stats  # filled in as the stream runs
        out._steps = self._locked(inner, out)
        return out

    def prepare_chunks(self, chunks: Sequence[str], *, tenant: str = "") -> int:
        """Compute and store the KV of every chunk text missing from the chunk store (e.g. a note
        just written, so the turn that first uses it finds it); returns how many were computed.
        Waits for the engine's lock like a generation."""
        from inference.chunk_kv import chunk_key
        from inference.chunk_reuse import compute_chunk_kv

        if self.chunk_store is None:
            return 0
        if self._owner == threading.get_ident():
            raise InvalidParams("this thread has an unfinished stream on this engine; exhaust or close it first")
        done = 0
        with self._lock:
            for text in chunks:
                tokens = self.tokenizer.encode(text)
                key = chunk_key(self.model_id, self.quant, tokens, tenant)
                if tokens and self.chunk_store.get(key) is None:
                    self.chunk_store.put(compute_chunk_kv(self.model, tokens, key))
                    done += 1
        return done

    def prepare_context(self, prompt: SegmentedPrompt, *, tenant: str = "") -> int:
        """Compute and store the exact in-context KV of ``prompt``'s chunks that lack it (e.g. after
        a reply whose prompt was blended, so that a next prompt with the same chunks in the same
        order reuses them exactly); the suffix is ignored. Returns how many chunk tokens lacked it.
        Runs on a cache of its own: the kept cache of the last generation stays."""
        if self.chunk_store is None:
            return 0
        segments = self.encode_segments(dataclasses.replace(prompt, suffix=""))
        if not segments.chunks:
            return 0
        if self._owner == threading.get_ident():
            raise InvalidParams("this thread has an unfinished stream on this engine; exhaust or close it first")
        blend = dataclasses.replace(self.blend, exact_context=True, exact_tail_tokens=len(segments.ids))
        fill = SegmentPrefill(self.model, segments, self.chunk_store, self.model_id, self.quant, self.prefix_cache,
                              tenant, blend, self.context_index)
        stats = CacheStats()
        with self._lock:
            fill(self.model.new_cache(len(segments.ids)), 0, stats)
        p, n = len(segments.prefix), len(segments.ids)
        return n - p - stats.chunk_exact_tokens - max(0, min(stats.prefix_hit_tokens, n) - p)

    def chunk_keys(self, text: str, *, tenant: str = "") -> list[str]:
        """Store keys of a chunk's KV: computed alone, then each in-context variant of it."""
        from inference.chunk_kv import chunk_key

        key = chunk_key(self.model_id, self.quant, self.tokenizer.encode(text), tenant)
        return [key, *sorted(self.context_index.variants_of(key))]

    def discard_chunk(self, text: str, *, tenant: str = "") -> int:
        """Drop a chunk's KV: computed alone and every in-context variant of it or computed after
        it (a deleted or edited note). Returns how many entries were dropped."""
        if self.chunk_store is None:
            return 0
        from inference.chunk_kv import chunk_key

        key = chunk_key(self.model_id, self.quant, self.tokenizer.encode(text), tenant)
        variants = self.context_index.drop(key)
        for k in (key, *variants):
            self.chunk_store.discard(k)
        return 1 + len(variants)

    def forget_kept(self) -> None:
        """Forget the KV kept from the last generation (benchmarks: as if another conversation
        had used the engine since). The prefix cache and the chunk store are not touched."""
        with self._lock:
            self._generator.forget()

    def complete_json(self, messages: Sequence[Message], schema: dict[str, Any],
                      params: GenerationParams | None = None) -> dict[str, Any]:
        """A dict that validates against ``schema``, decoded under a JSON-schema grammar (greedy
        unless ``params`` says otherwise). Raises StructuredOutputError if it cannot complete."""
        from inference.constrained import JsonSchemaConstraint
        from inference.json_output import parse_and_validate

        params = dataclasses.replace(params or GenerationParams(max_tokens=512), stop=())
        tok = self.tokenizer
        constraint = JsonSchemaConstraint.compile(
            schema, tok.vocab_tokens, tok.eos_token_ids, tok.vocab_size,
            special_token_ids=tok.special_ids, max_tokens=params.max_tokens)
        s = self.stream_tokens(_with_json_instruction(messages, schema), params, constraint)
        for _ in s:
            pass
        return parse_and_validate(s.text, schema)

    def _locked(self, inner: GenerationStream, out: GenerationStream) -> Iterator[str]:
        if self._owner == threading.get_ident():
            # waiting would deadlock: this thread holds an unfinished stream of the same engine
            raise InvalidParams("this thread has an unfinished stream on this engine; exhaust or close it first")
        with self._lock:
            self._owner = threading.get_ident()
            try:
                for piece in inner:
                    out.text += piece
                    yield piece
            finally:
                self._owner = None
                out.finish_reason, out.token_ids = inner.finish_reason, inner.token_ids
                out.reused_tokens, out.stats = inner.reused_tokens, inner.stats


def _with_json_instruction(messages: Sequence[Message], schema: dict[str, Any]) -> list[Message]:
    """Put the schema in the system message (appended to the caller's own, if any)."""
    from inference.json_output import json_instruction

    msgs = [dict(m) for m in messages]
    if msgs and msgs[0].get("role") == "system":
        msgs[0]["content"] = f"{msgs[0]['content']}\n\n{json_instruction(schema)}"
        return msgs
    return [{"role": "system", "content": json_instruction(schema)}, *msgs]
