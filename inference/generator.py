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
"""
from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import torch

from inference.errors import ContextOverflow, InvalidParams
from inference.kv_cache import KVCache
from inference.model import Transformer
from inference.params import GenerationParams
from inference.sampling import make_generator, sample
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
        self.reused_tokens = 0  # prompt tokens whose KV came from the previous generation

    def __iter__(self) -> Iterator[str]:
        return self._steps


class Generator:
    """Runs a Transformer and a Tokenizer. One generation at a time per Generator (it owns the cache).

    The KV cache outlives a generation: the next prompt's longest common prefix with the tokens
    already in the cache is not prefilled again (a chat turn re-sends the whole conversation).
    """

    def __init__(self, model: Transformer, tokenizer: Tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self._cache: KVCache | None = None
        self._cached: list[int] = []  # the tokens whose K/V sit at positions 0.. of the cache
        self._epoch = 0  # so that a stale, abandoned stream cannot overwrite ``_cached``

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        constraint: LogitsConstraint | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationStream:
        """Start generating after ``prompt_ids``; nothing runs until the stream is iterated."""
        if not prompt_ids:
            raise InvalidParams("the prompt must contain at least one token")
        room = self.model.cfg.context_length - len(prompt_ids)
        if room < 1:
            raise ContextOverflow(f"prompt of {len(prompt_ids)} tokens fills the context of "
                                  f"{self.model.cfg.context_length}")
        out = GenerationStream(iter(()))
        out._steps = self._run(out, list(prompt_ids), params, min(params.max_tokens, room), constraint, cancel)
        return out

    def generate(self, prompt_ids: Sequence[int], params: GenerationParams,
                 constraint: LogitsConstraint | None = None, cancel: threading.Event | None = None) -> GenerationStream:
        """Run to the end; returns the exhausted stream (read ``.text``, ``.finish_reason``)."""
        s = self.stream(prompt_ids, params, constraint, cancel)
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

    def _run(self, out: GenerationStream, prompt: list[int], params: GenerationParams, max_new: int,
             constraint: LogitsConstraint | None, cancel: threading.Event | None) -> Iterator[str]:
        """The generation; ``history`` (prompt + sampled tokens) is shared with :meth:`_decode`."""
        self._epoch += 1
        epoch = self._epoch
        cache, reuse = self._reusable_cache(prompt, len(prompt) + max_new)
        self._cached, out.reused_tokens = [], reuse
        cache.truncate(reuse)  # if prefill fails, only the reused prefix is known to be valid
        history = list(prompt)
        try:
            yield from self._decode(out, history, reuse, cache, params, max_new, constraint, cancel)
        finally:
            if self._epoch == epoch:
                self._cached = history[: cache.length]

    def _decode(self, out: GenerationStream, history: list[int], reuse: int, cache: KVCache,
                params: GenerationParams, max_new: int, constraint: LogitsConstraint | None,
                cancel: threading.Event | None) -> Iterator[str]:
        rng = make_generator(params.seed)
        decoder = self.tokenizer.stream_decoder()
        eos = set(self.tokenizer.eos_token_ids)
        pending = ""
        # clone: the model returns inference-mode tensors, which a constraint may not mask in place
        logits = self.model(torch.tensor([history[reuse:]]), reuse, cache)[0, -1].clone()  # [V]
        out.finish_reason = "length"
        for step in range(max_new):
            if cancel is not None and cancel.is_set():
                out.finish_reason = "cancelled"
                break
            if constraint is not None:
                constraint.apply(logits)
            tok = sample(logits, params, rng, history)
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
