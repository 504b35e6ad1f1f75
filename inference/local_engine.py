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
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from inference.chat_template import ChatTemplate
from inference.engine import Message, Prompt
from inference.errors import GenerationCancelled, InvalidParams
from inference.generator import GenerationStream, Generator, LogitsConstraint
from inference.gguf_file import GGUFFile, default_model_path
from inference.linear import QUANT_MODES
from inference.model import Transformer
from inference.params import GenerationParams
from inference.tokenizer import Tokenizer


class LocalEngine:
    """In-process engine over a Llama-architecture GGUF file.

    ``quant``: "int4" (default; Q4_0/Q4_1 kept exactly), "int8" or "fp32" (reference).
    ``threads`` sets torch's intra-op threads for the whole process.
    """

    def __init__(self, model_path: str | Path | None = None, quant: str = "int4", threads: int = 2):
        if quant not in QUANT_MODES:
            raise InvalidParams(f"quant must be one of {QUANT_MODES}, got {quant!r}")
        if threads < 1:
            raise InvalidParams("threads must be >= 1")
        torch.set_num_threads(threads)
        start = time.perf_counter()
        path = Path(model_path) if model_path is not None else default_model_path()
        gf = GGUFFile.open(path)
        self.config = gf.config
        self.tokenizer = Tokenizer.from_gguf(gf.metadata)
        self.template = ChatTemplate.from_gguf(gf.metadata)
        self.model = Transformer.from_gguf(gf, quant)
        self.quant = quant
        self.model_id = f"local/{path.stem}/{quant}"
        self.load_seconds = time.perf_counter() - start
        self._generator = Generator(self.model, self.tokenizer)
        self._lock = threading.Lock()
        self._owner: int | None = None  # thread that holds the lock, to refuse self-deadlock

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids for a raw string, or for messages rendered with the chat template."""
        if isinstance(prompt, str):
            return self.tokenizer.encode(prompt)
        if not isinstance(prompt, Sequence):
            raise InvalidParams("prompt must be a string or a list of messages")
        return self.tokenizer.encode(self.template.render(list(prompt)))

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.encode_prompt(prompt))

    def generate(self, prompt: Prompt, params: GenerationParams | None = None,
                 cancel: threading.Event | None = None) -> str:
        """The whole reply. Raises GenerationCancelled if ``cancel`` is set before the end."""
        s = self.stream_tokens(prompt, params, cancel=cancel)
        for _ in s:
            pass
        if s.finish_reason == "cancelled":
            raise GenerationCancelled(f"cancelled after {len(s.token_ids)} tokens")
        return s.text

    def stream(self, prompt: Prompt, params: GenerationParams | None = None,
               cancel: threading.Event | None = None) -> Iterator[str]:
        """Text pieces as they are decoded; stops quietly when ``cancel`` is set."""
        yield from self.stream_tokens(prompt, params, cancel=cancel)

    def stream_tokens(self, prompt: Prompt, params: GenerationParams | None = None,
                      constraint: LogitsConstraint | None = None,
                      cancel: threading.Event | None = None) -> GenerationStream:
        """Like :meth:`stream`, returning the stream object (``finish_reason``, ``token_ids``)."""
        ids = self.encode_prompt(prompt)
        inner = self._generator.stream(ids, params or GenerationParams(), constraint, cancel)
        out = GenerationStream(iter(()))
        out._steps = self._locked(inner, out)
        return out

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
                out.reused_tokens = inner.reused_tokens


def _with_json_instruction(messages: Sequence[Message], schema: dict[str, Any]) -> list[Message]:
    """Put the schema in the system message (appended to the caller's own, if any)."""
    from inference.json_output import json_instruction

    msgs = [dict(m) for m in messages]
    if msgs and msgs[0].get("role") == "system":
        msgs[0]["content"] = f"{msgs[0]['content']}\n\n{json_instruction(schema)}"
        return msgs
    return [{"role": "system", "content": json_instruction(schema)}, *msgs]
