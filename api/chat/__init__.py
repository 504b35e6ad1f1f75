"""Memory-augmented chat: retrieval → chunk-cached generation → write-back (ARCHITECTURE.md,
"Data flow of one chat turn").

- ``context``: notes and facts → chunks of stable text, in a stable order, under a token budget;
- ``memory_kv``: a note's retention as its chunk's predicted reuse; archive/delete/edit drop it;
- ``turn``: one turn (prepare, generate, write back) — ``ChatPipeline``;
- ``engines``: the engine named by the settings (local SmolLM2, a litellm model, or none);
- ``sse``: a generation thread feeding an async event stream.

Usage: ``from api.chat import ChatPipeline, ChatRequest``.
"""
from api.chat.turn import ChatPipeline, ChatRequest, ChatResult

__all__ = ["ChatPipeline", "ChatRequest", "ChatResult"]
