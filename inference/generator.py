"""The decode loop: prefill the prompt in one pass, then one token at a time.

Usage::

    gen = Generator(model, tokenizer)
    stream = gen.stream(prompt_ids, GenerationParams(max_tokens=64), cancel=threading.Event())
    for piece in stream:
        print(piece, end="")
    stream.finish_reason  # "stop" | "length" | "cancelled"

A ``LogitsConstraint`` (e.g. a JSON-schema grammar) may restrict every step: ``apply`` masks the
logits before sampling, ``accept`` advances it with the chosen token, ``is_terminated`` ends
generation.

How the prompt's KV is filled is a ``Prefill`` (``inference.prefill``): by default the whole
prompt after what the cache (and the prefix cache, when given) already holds; LocalEngine passes a
``SegmentPrefill`` for prompts with reusable chunks. ``stream.stats`` (a ``CacheStats``) says where
the prompt's KV came from and the time to the first token.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import torch

from inference.errors import ContextOverflow, InvalidParams
from inference.kv_cache import KVCache
from inference.model import Transformer
from inference.params import GenerationParams
from inference.prefill import PlainPrefill, Prefill, Prefilled
from inference.prefix_cache import PrefixCache
from inference.sampling import make_generator, sample
from inference.segments import CacheStats
from inference.tokenizer import Tokenizer


@runtime_checkable
class LogitsConstraint(Protocol):
    """Restricts which tokens may come next (implemented by inference.constrained)."""

    def apply(self, logits: torch.Tensor) -> None:
        """Mask disallowed tokens of logits: [V] fp32 to -inf, in place."""

    def accept(self, token_id: int) -> None: ...

    def is_terminated(self) -> bool: ...


def split_at_stop(text: str, stops: Sequence[str]) -> tuple[str, str, bool]:
    """Split pending text into (safe to emit, held back, stopped).

    Text is cut before the first stop string; without one, the longest tail that could still
    grow into a stop string is held back.
    """
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    if cut >= 0:
        return text[:cut], "", True
    hold = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), hold, -1):
            if text.endswith(s[:n]):
                hold = n
                break
    return text[: len(text) - hold], text[len(text) - hold :], False


class GenerationStream:
    """Iterator of text pieces; after exhaustion ``finish_reason``, ``token_ids`` and ``text`` are set."""

    def __init__(self, steps: Iterator[str]):
        self._steps = steps
        self.finish_reason: str | None = None
        self.token_ids: list[int] = []
        self.text = ""
        self.reused_tokens = 0  # prompt tokens whose KV was kept from earlier requests (not prefilled)
        self.stats = CacheStats()

    def __iter__(self) -> Iterator[str]:
        return self._steps


class Generator:
    """Runs a Transformer and a Tokenizer. One generation at a time per Generator (it owns the cache).

    The KV cache outlives a generation: the next prompt's longest common prefix with the tokens
    already in the cache is not prefilled again (a chat turn re-sends the whole conversation).
    With a ``prefix_cache``, full blocks of every finished prompt (and reply) are kept for later
    requests too, so interleaved conversations and tenants each keep their prefix.
    """

    def __init__(self, model: Transformer, tokenizer: Tokenizer, prefix_cache: PrefixCache | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.prefix_cache = prefix_cache
        self._cache: KVCache | None = None
        self._cached: list[int] = []  # the tokens whose K/V sit at positions 0.. of the cache
        self._epoch = 0  # so that a stale, abandoned stream cannot overwrite ``_cached``

    def forget(self) -> None:
        """Keep nothing from the last generation (the next prompt is prefilled from scratch,
        apart from what the prefix cache holds)."""
        self._cached = []

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        constraint: LogitsConstraint | None = None,
        cancel: threading.Event | None = None,
        *,
        tenant: str = "",
        prefill: Prefill | None = None,
    ) -> GenerationStream:
        """Start generating after ``prompt_ids``; nothing runs until the stream is iterated.

        ``tenant`` salts the prefix-cache keys; ``prefill`` (whose ``ids`` must be ``prompt_ids``)
        replaces the plain prefill."""
        if not prompt_ids:
            raise InvalidParams("the prompt must contain at least one token")
        room = self.model.cfg.context_length - len(prompt_ids)
        if room < 1:
            raise ContextOverflow(f"prompt of {len(prompt_ids)} tokens fills the context of "
                                  f"{self.model.cfg.context_length}")
        prefill = prefill or PlainPrefill(self.model, prompt_ids, self.prefix_cache, tenant)
        assert list(prefill.ids) == list(prompt_ids)
        out = GenerationStream(iter(()))
        out._steps = self._run(out, prefill, params, min(params.max_tokens, room), constraint, cancel)
        return out

    def generate(self, prompt_ids: Sequence[int], params: GenerationParams,
                 constraint: LogitsConstraint | None = None, cancel: threading.Event | None = None,
                 *, tenant: str = "", prefill: Prefill | None = None) -> GenerationStream:
        """Run to the end; returns the exhausted stream (read ``.text``, ``.finish_reason``, ``.stats``)."""
        s = self.stream(prompt_ids, params, constraint, cancel, tenant=tenant, prefill=prefill)
        for _ in s:
            pass
        return s

    def _reusable_cache(self, prompt: list[int], need: int) -> tuple[KVCache, int]:
        """A cache with room for ``need`` positions, and how many prompt tokens it already holds."""
        old = self._cache
        if old is None or old.max_len < need:
            # grow with headroom, keeping the cached prefix, so that a growing chat keeps reusing it
            size = min(self.model.cfg.context_length, max(need, 2 * (old.max_len if old else 0)))
            self._cache = self.model.new_cache(size)
            n = len(self._cached) if old is not None else 0
            for layer in range(self.model.cfg.n_layers if n else 0):
                self._cache.update(layer, 0, old.k[layer][:, :, :n], old.v[layer][:, :, :n])
        reuse = 0
        for a, b in zip(self._cached, prompt):
            if a != b:
                break
            reuse += 1
        return self._cache, min(reuse, len(prompt) - 1)  # the last prompt token is fed for its logits

    def _run(self, out: GenerationStream, prefill: Prefill, params: GenerationParams, max_new: int,
             constraint: LogitsConstraint | None, cancel: threading.Event | None) -> Iterator[str]:
        """The generation; ``history`` (prompt + sampled tokens) is shared with :meth:`_decode`."""
        self._epoch += 1
        epoch = self._epoch
        prompt = list(prefill.ids)
        cache, reuse = self._reusable_cache(prompt, len(prompt) + max_new)
        self._cached = []
        cache.truncate(reuse)  # if prefill fails, only the reused prefix is known to be valid
        history = list(prompt)
        done = Prefilled(torch.empty(0), reuse)  # what is exact if prefill fails
        try:
            start = time.perf_counter()
            done = prefill(cache, reuse, out.stats)
            out.reused_tokens = out.stats.prefix_hit_tokens
            yield from self._decode(out, history, done.logits, cache, params, max_new, constraint, cancel, start)
        finally:
            if self._epoch == epoch:
                # after a blended prompt only the exact prefix may be reused; tokens decoded after
                # a fully exact prompt are exact too
                exact = cache.length if done.exact >= len(prompt) else min(done.exact, cache.length)
                self._cached = history[:exact]
                if self.prefix_cache is not None:
                    self.prefix_cache.save(history, cache, exact, prefill.tenant)

    def _decode(self, out: GenerationStream, history: list[int], logits: torch.Tensor, cache: KVCache,
                params: GenerationParams, max_new: int, constraint: LogitsConstraint | None,
                cancel: threading.Event | None, start: float) -> Iterator[str]:
        rng = make_generator(params.seed)
        decoder = self.tokenizer.stream_decoder()
        eos = set(self.tokenizer.eos_token_ids)
        pending = ""
        logits = logits.clone()  # inference-mode tensors may not be masked in place by a constraint
        out.finish_reason = "length"
        for step in range(max_new):
            if cancel is not None and cancel.is_set():
                out.finish_reason = "cancelled"
                break
            if constraint is not None:
                constraint.apply(logits)
            tok = sample(logits, params, rng, history)
            if step == 0:
                out.stats.ttft_ms = (time.perf_counter() - start) * 1000
            if constraint is not None:
                constraint.accept(tok)
            if tok in eos:
                out.finish_reason = "stop"
                break
            out.token_ids.append(tok)
            history.append(tok)
            emit, pending, stopped = split_at_stop(pending + decoder.push(tok), params.stop)
            if emit:
                out.text += emit
                yield emit
            if stopped:
                out.finish_reason = "stop"
                return  # text after a stop string is dropped, held-back bytes included
            if constraint is not None and constraint.is_terminated():
                out.finish_reason = "stop"
                break
            if step + 1 < max_new:
                logits = self.model(torch.tensor([[tok]]), len(history) - 1, cache)[0, -1].clone()
        if out.finish_reason == "cancelled":
            return
        emit, _, _ = split_at_stop(pending + decoder.flush(), params.stop)
        if emit:
            out.text += emit
            yield emit
