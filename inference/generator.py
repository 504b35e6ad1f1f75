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

    def __iter__(self) -> Iterator[str]:
        return self._steps


class Generator:
    """Runs a Transformer and a Tokenizer. One generation at a time per Generator (it owns the cache)."""

    def __init__(self, model: Transformer, tokenizer: Tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self._cache: KVCache | None = None

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

    def _cache_for(self, n: int) -> KVCache:
        if self._cache is None or self._cache.max_len < n:
            self._cache = self.model.new_cache(n)
        return self._cache

    def _run(self, out: GenerationStream, prompt: list[int], params: GenerationParams, max_new: int,
             constraint: LogitsConstraint | None, cancel: threading.Event | None) -> Iterator[str]:
        cache = self._cache_for(len(prompt) + max_new)
        rng = make_generator(params.seed)
        decoder = self.tokenizer.stream_decoder()
        eos = set(self.tokenizer.eos_token_ids)
        pending, history = "", list(prompt)
        # clone: the model returns inference-mode tensors, which a constraint may not mask in place
        logits = self.model(torch.tensor([prompt]), 0, cache)[0, -1].clone()  # [V]
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
