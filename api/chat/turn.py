"""One chat turn: retrieve → assemble chunks → generate (chunk-cached) → write back.

Usage::

    pipeline = ChatPipeline(engine, ChatConfig(), MemoryKV(engine))
    result = pipeline.run("acme", mem, ChatRequest(message="Where do I live?", user_id="ann"))
    result.reply, result.memories, result.stats

    # streaming: prepare, iterate generate(), then finish
    turn = pipeline.prepare("acme", mem, request)
    for piece in pipeline.generate(turn, cancel): ...
    result = pipeline.finish("acme", mem, turn)

``run`` and the three steps block (model time): the REST layer calls them in a worker thread.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from api.chat.context import FACT, NOTE, ContextChunk, assemble, fact_text, note_text
from api.chat.memory_kv import MemoryKV
from api.chat.prompt import SYSTEM, local_prompt, remote_messages
from api.chat.window import MemoryWindows
from api.errors import LLMOutputInvalid, LLMUnavailable
from inference import errors as ie
from inference.engine import Message
from inference.params import GenerationParams
from memory.errors import InvalidInput, ScopeRequired


@dataclass(frozen=True)
class ChatConfig:
    """``context_tokens``: budget of the memory chunks a turn retrieves; ``top_k``: memories
    retrieved per turn; ``window_tokens``: budget of the sticky window, which carries earlier
    turns' memories beside this turn's on the local engine (a value below ``context_tokens`` counts
    as it; a remote model's window is ``context_tokens``)."""

    context_tokens: int = 384
    # Conversations come back to topics, and a memory already in the window costs no prefill on
    # the next turn. With the window no larger than one turn's retrieval, a median of 252 of a
    # ~560-token prompt was prefilled each turn (bench/chat.py); at 1,024, 142-163 of ~1,060
    # are, and the first token comes sooner despite the longer prompt. The price: each decoded
    # token reads ~500 more tokens of KV, ~4 ms (docs/benchmarks.md, issue 7).
    window_tokens: int = 1024
    top_k: int = 8
    max_tokens_limit: int = 1024
    max_message_chars: int = 8000
    max_history: int = 40
    system: str = SYSTEM
    # keep the last prompt's memories in their order and append new ones (api.chat.window), so
    # that their KV is exact on the next turn
    sticky: bool = True
    # new memory tokens after the exact part of the prompt, up to which they are prefilled in full
    # (exact) rather than blended from KV computed alone (BlendConfig.exact_tail_tokens); past
    # this many, CacheBlend's speed is worth its approximation
    exact_tail_tokens: int = 1024


@dataclass
class ChatRequest:
    """A user's message in a memory scope; ``history``: earlier turns of this conversation."""

    message: str
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    history: list[Message] = field(default_factory=list)
    max_tokens: int | None = None  # None: 128, or the service's limit when that is lower
    temperature: float = 0.0
    top_k: int | None = None
    remember: bool = True
    system: str | None = None
    json_schema: dict[str, Any] | None = None

    def scope(self) -> dict[str, str | None]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "session_id": self.session_id}


@dataclass
class PreparedTurn:
    request: ChatRequest
    chunks: list[ContextChunk]
    params: GenerationParams
    prompt: Any = None  # the local engine's SegmentedPrompt, once generated (for ``warm``)
    text: str = ""
    finish_reason: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    completion_tokens: int = 0


@dataclass
class ChatResult:
    """What a turn returns; ``notes`` (the notes written back) is for ``warm``, not serialised."""

    reply: str
    finish_reason: str | None
    memories: list[dict[str, Any]]
    stats: dict[str, Any]
    written: list[str]
    model: str
    completion_tokens: int
    notes: list[Any] = field(default_factory=list, repr=False)
    prompt: Any = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("notes", "prompt")}



class ChatPipeline:
    """The turn orchestration over one engine (shared by every tenant of the process)."""

    def __init__(self, engine: Any, config: ChatConfig | None = None, kv: MemoryKV | None = None) -> None:
        self.engine = engine
        self.config = config or ChatConfig()
        self.kv = kv
        self.local = hasattr(engine, "stream_tokens")  # chunk reuse needs the in-process engine
        self.windows = MemoryWindows()

    def run(self, tenant: str, mem: Any, request: ChatRequest) -> ChatResult:
        turn = self.prepare(tenant, mem, request)
        for _ in self.generate(turn, tenant):
            pass
        return self.finish(tenant, mem, turn)

    def prepare(self, tenant: str, mem: Any, request: ChatRequest) -> PreparedTurn:
        """Validate, retrieve (a recall: found notes are reinforced) and assemble the chunks."""
        self._check(request)
        cfg = self.config
        found = mem.search(request.message, top_k=request.top_k or cfg.top_k, **request.scope())
        chunks = assemble(found, self.engine.count_tokens, cfg.context_tokens)
        if cfg.sticky:
            key = (tenant, request.user_id, request.agent_id, request.session_id)
            # carrying memories beyond this turn's pays off only where their KV is reused; a remote
            # model would be sent (and bill) the extra tokens every turn for nothing
            window = max(cfg.window_tokens, cfg.context_tokens) if self.local else cfg.context_tokens
            chunks = self.windows.arrange(key, chunks, window, lambda carried: still_valid(mem, carried))
            self.windows.remember(key, chunks)
        with _engine_errors():
            params = GenerationParams(max_tokens=request.max_tokens or min(128, cfg.max_tokens_limit),
                                      temperature=request.temperature)
        if self.kv is not None:
            self.kv.watch(tenant, mem)
        return PreparedTurn(request, chunks, params)

    def generate(self, turn: PreparedTurn, tenant: str = "", cancel: threading.Event | None = None) -> Iterator[str]:
        """Text pieces of the reply; ``turn`` gets the text, finish reason and cache statistics."""
        start = time.perf_counter()
        first: float | None = None
        with _engine_errors():
            for piece in self._pieces(turn, tenant, cancel):
                if first is None:
                    first = time.perf_counter()
                turn.text += piece
                yield piece
        end = time.perf_counter()
        turn.stats["ttft_ms"] = turn.stats.get("ttft_ms") or round(1000 * ((first or end) - start), 1)
        turn.stats["total_ms"] = round(1000 * (end - start), 1)

    def finish(self, tenant: str, mem: Any, turn: PreparedTurn) -> ChatResult:
        """Write the exchange back (user and assistant notes) and refresh the chunk-store hints."""
        req = turn.request
        notes: list[Any] = []
        if req.remember and turn.text.strip() and turn.finish_reason != "cancelled":
            notes = mem.add([{"role": "user", "content": req.message}, {"role": "assistant", "content": turn.text}],
                            metadata={"source": "chat"}, **req.scope())
        written = [n.id for n in notes]
        if self.kv is not None and self.local:
            self.kv.after_turn(tenant, mem, turn.chunks)
        return ChatResult(turn.text, turn.finish_reason, [c.as_dict() for c in turn.chunks], turn.stats, written,
                          self.engine.model_id, turn.completion_tokens, notes, turn.prompt)

    def warm(self, tenant: str, result: ChatResult) -> int:
        """After the reply is sent: compute the chunk KV of the notes ``result`` wrote back, and,
        when the turn blended some memories, their exact KV in this prompt's order (the next
        turn's window starts with it). Returns how many KV computations ran."""
        if self.kv is None or not self.local:
            return 0
        done = self.kv.warm(tenant, result.notes) if result.notes else 0
        s = result.stats
        blended = s.get("chunk_reused_tokens", 0) + s.get("chunk_computed_tokens", 0) - s.get("chunk_exact_tokens", 0)
        if result.prompt is not None and blended > 0 and hasattr(self.engine, "prepare_context"):
            done += self.engine.prepare_context(result.prompt, tenant=tenant) > 0
        return done

    # ---- internals ---------------------------------------------------------------------------

    def _pieces(self, turn: PreparedTurn, tenant: str, cancel: threading.Event | None) -> Iterator[str]:
        req, texts = turn.request, [c.text for c in turn.chunks]
        system = req.system or self.config.system
        if req.json_schema is not None:
            messages = remote_messages(system, texts, req.history, req.message)
            answer = self.engine.complete_json(messages, req.json_schema, turn.params)
            turn.finish_reason = "stop"
            yield json.dumps(answer, ensure_ascii=False)
            return
        if self.local:
            prompt = turn.prompt = local_prompt(self.engine.template, system, texts, req.history, req.message)
            blend = getattr(self.engine, "blend", None)
            if blend is not None:
                blend = dataclasses.replace(blend, exact_tail_tokens=self.config.exact_tail_tokens)
            stream = self.engine.stream_tokens(prompt, turn.params, cancel=cancel, tenant=tenant, blend=blend)
            yield from stream
            turn.finish_reason, turn.completion_tokens = stream.finish_reason, len(stream.token_ids)
            turn.stats.update(asdict(stream.stats))
            return
        n = 0
        for piece in self.engine.stream(remote_messages(system, texts, req.history, req.message), turn.params):
            if cancel is not None and cancel.is_set():
                turn.finish_reason = "cancelled"
                return
            n += 1
            yield piece
        turn.finish_reason, turn.completion_tokens = "stop", n

    def _check(self, req: ChatRequest) -> None:
        cfg = self.config
        if not isinstance(req.message, str) or not req.message.strip():
            raise InvalidInput("message must be a non-empty string")
        if len(req.message) > cfg.max_message_chars:
            raise InvalidInput(f"message is over {cfg.max_message_chars} characters")
        if all(v is None for v in req.scope().values()):
            raise ScopeRequired("a chat needs a memory scope: user_id, agent_id or session_id")
        if req.max_tokens is not None and not 1 <= req.max_tokens <= cfg.max_tokens_limit:
            raise InvalidInput(f"max_tokens must be in [1, {cfg.max_tokens_limit}]")
        if not 0.0 <= req.temperature <= 2.0:
            raise InvalidInput("temperature must be in [0, 2]")
        if len(req.history) > cfg.max_history:
            raise InvalidInput(f"history holds more than {cfg.max_history} messages")
        for m in req.history:
            if m.get("role") not in ("user", "assistant") or not isinstance(m.get("content"), str):
                raise InvalidInput("history messages need role 'user' or 'assistant' and string content")


def still_valid(mem: Any, carried: list[ContextChunk]) -> set[str]:
    """Ids of carried chunks whose memory is unchanged: a note still there, not archived, with the
    same text; a fact still current, rendered the same."""
    note_ids = [c.id for c in carried if c.kind == NOTE]
    fact_ids = [c.id for c in carried if c.kind == FACT]
    notes = mem.store.get_many(note_ids) if note_ids else {}
    facts = mem.graph.store.facts_by_id(fact_ids) if fact_ids else {}
    alive = set()
    for c in carried:
        if c.kind == NOTE and (n := notes.get(c.id)) is not None and not n.archived and note_text(n) == c.text:
            alive.add(c.id)
        elif c.kind == FACT and (f := facts.get(c.id)) is not None and f.is_current and f.expired_at is None \
                and fact_text(f.render()) == c.text:
            alive.add(c.id)
    return alive


@contextmanager
def _engine_errors() -> Iterator[None]:
    """The one boundary where inference errors become Engram errors (and so HTTP statuses)."""
    try:
        yield
    except (ie.InvalidParams, ie.ContextOverflow) as exc:
        raise InvalidInput(str(exc)) from exc
    except ie.StructuredOutputError as exc:
        raise LLMOutputInvalid(str(exc)) from exc
    except ie.InferenceError as exc:
        raise LLMUnavailable(str(exc)) from exc
