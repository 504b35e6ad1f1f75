"""A prompt given in segments, and what the KV caches saved on it.

Usage::

    prompt = SegmentedPrompt(prefix="<|im_start|>system\\nAnswer from the notes.\\n",
                             chunks=["Ann moved to Lisbon in May.\\n", "Ann's sister is Eva.\\n"],
                             suffix="<|im_end|>\\n<|im_start|>user\\nWhere does Ann live?<|im_end|>\\n"
                                    "<|im_start|>assistant\\n")
    s = engine.stream_tokens(prompt, GenerationParams(max_tokens=32))
    text = "".join(s); s.stats  # CacheStats(prefix_hit_tokens=..., chunk_reused_tokens=..., ttft_ms=...)

The prompt is ``[prefix][chunk 1]...[chunk n][suffix]``, each segment raw text (special tokens
such as ``<|im_start|>`` are recognised) and **tokenised on its own**: chunk boundaries are known
by construction, never searched for in a tokenised prompt (BPE merges across a separator would
break such a search). The prefix (system prompt, conversation so far) is served by the prefix
cache; each chunk's KV comes from the chunk store, re-positioned and blended; the suffix is always
prefilled. This module imports nothing heavy.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inference.errors import InvalidParams


@dataclass(frozen=True)
class SegmentedPrompt:
    """``[prefix][chunks...][suffix]`` as text; ``chunks`` may be any sequence of strings."""

    prefix: str = ""
    chunks: tuple[str, ...] = ()
    suffix: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.chunks, str) or not isinstance(self.chunks, Sequence):
            raise InvalidParams("chunks must be a sequence of strings")
        object.__setattr__(self, "chunks", tuple(self.chunks))
        if not all(isinstance(x, str) for x in (self.prefix, self.suffix, *self.chunks)):
            raise InvalidParams("prefix, chunks and suffix must be strings")
        if not (self.prefix or self.suffix or any(self.chunks)):
            raise InvalidParams("the prompt must not be empty")


@dataclass(frozen=True)
class TokenSegments:
    """A :class:`SegmentedPrompt` after tokenisation (empty chunks dropped)."""

    prefix: tuple[int, ...]
    chunks: tuple[tuple[int, ...], ...]
    suffix: tuple[int, ...]

    @property
    def ids(self) -> list[int]:
        return [*self.prefix, *(t for c in self.chunks for t in c), *self.suffix]


@dataclass
class CacheStats:
    """Where a prompt's KV came from (token counts) and the time to the first token.

    prompt_tokens = prefix_hit_tokens + chunk_reused_tokens + chunk_computed_tokens + prefilled_tokens;
    ``recomputed_tokens`` (selective recompute) counts reused chunk tokens run again, a subset of
    the two chunk counts; ``chunk_exact_tokens`` counts reused chunk tokens whose KV was computed
    after the same segments at the same position (exact: never recomputed), a subset of
    ``chunk_reused_tokens``. Chunk tokens prefilled in full count as ``prefilled_tokens``.
    """

    prompt_tokens: int = 0
    prefix_hit_tokens: int = 0  # KV restored from the prefix cache or kept from the last request
    chunk_reused_tokens: int = 0  # chunk tokens whose KV came from the chunk store
    chunk_exact_tokens: int = 0  # of those, stored after the same segments at the same position: no recompute
    chunk_computed_tokens: int = 0  # chunk tokens missing from the store: computed alone and stored
    recomputed_tokens: int = 0  # reused chunk tokens recomputed in context by selective recompute
    chunk_stored_tokens: int = 0  # chunk tokens prefilled in full and stored in context (part of prefilled)
    prefilled_tokens: int = 0  # tokens with no cache, computed in full
    ttft_ms: float | None = None
