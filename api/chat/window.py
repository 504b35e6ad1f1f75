"""The sticky memory window: each turn's memory block extends the previous turn's.

A chunk's KV is exact, and reused with no recompute, when it sits after exactly the same chunks
as when it was computed (``inference.chunk_context``). Sorting each turn's retrieval afresh
would move most chunks whenever one memory enters or leaves. So a conversation keeps the chunks
of its last prompt **in their order**, and this turn's newly retrieved memories are **appended**:

- every memory this turn's retrieval selected (best first, under the budget) is in the prompt —
  the window never pushes out what is relevant now;
- memories of earlier turns stay while they fit the budget (conversations come back to topics);
  when they do not, the carried ones this turn did not retrieve leave from the back, which keeps
  the longest exact run of chunks at the front;
- a carried memory that was archived, deleted or edited (or a fact no longer current, or
  rendered differently) leaves at once: the prompt never shows a stale memory.

Carried chunks are marked ``retrieved=False`` (the reply's memory list shows them so). Usage::

    windows = MemoryWindows()
    chunks = windows.arrange(key, retrieved, budget, valid=lambda carried: {ids still valid})
"""
from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

from api.chat.context import ContextChunk


def sticky(previous: Sequence[ContextChunk], retrieved: Sequence[ContextChunk], budget: int) -> list[ContextChunk]:
    """``previous`` (valid chunks of the last prompt, in order) extended by ``retrieved`` (this
    turn's selection, already under ``budget``, in stable order)."""
    now = {_ident(c): c for c in retrieved}
    kept = [now.get(_ident(c)) or dataclasses.replace(c, retrieved=False) for c in previous]
    held = {_ident(c) for c in kept}
    new = [c for c in retrieved if _ident(c) not in held]
    used = sum(c.n_tokens for c in kept) + sum(c.n_tokens for c in new)
    for i in range(len(kept) - 1, -1, -1):  # carried, not retrieved now: leave from the back
        if used <= budget:
            break
        if not kept[i].retrieved:
            used -= kept[i].n_tokens
            kept[i] = None  # type: ignore[call-overload]
    return [c for c in kept if c is not None] + new


def _ident(chunk: ContextChunk) -> tuple[str, str, str]:
    return chunk.kind, chunk.id, chunk.text  # an edited note or a re-rendered fact is another chunk


class MemoryWindows:
    """The last prompt's chunks per conversation (tenant + scope), least recently used forgotten."""

    def __init__(self, max_conversations: int = 1024) -> None:
        self._last: OrderedDict[Hashable, list[ContextChunk]] = OrderedDict()
        self._max = max_conversations
        self._lock = threading.Lock()

    def arrange(self, key: Hashable, retrieved: Sequence[ContextChunk], budget: int,
                valid: Callable[[list[ContextChunk]], set[str]]) -> list[ContextChunk]:
        """This turn's chunks; ``valid`` returns the ids of the carried chunks still current."""
        with self._lock:
            previous = list(self._last.get(key, ()))
        if previous:
            alive = valid(previous)
            previous = [c for c in previous if c.id in alive]
        return sticky(previous, retrieved, budget)

    def remember(self, key: Hashable, chunks: Sequence[ContextChunk]) -> None:
        """The chunks a prompt used (call once the turn has run)."""
        with self._lock:
            self._last[key] = list(chunks)
            self._last.move_to_end(key)
            while len(self._last) > self._max:
                self._last.popitem(last=False)
