"""The chat prompt: ``[system + memories header][memory chunks...][end of system, conversation, question]``.

The text around the chunks comes from the model's own chat template, rendered once with a
marker where the memories go and split there, so the layout fits any template. The prefix is
the same on every turn (the prefix cache serves it); each chunk's KV comes from the chunk store;
only the conversation and the question are prefilled.

Usage::

    prompt = local_prompt(engine.template, SYSTEM, [c.text for c in chunks], history, "Where do I live?")
    messages = remote_messages(SYSTEM, [c.text for c in chunks], history, "Where do I live?")
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inference.engine import Message
from inference.segments import SegmentedPrompt

SYSTEM = ("You are a helpful assistant with a long-term memory of the user. Answer briefly, using the "
          "memories below when they help.")
HEADER = "\nMemories (date, what was said):\n"
_MARK = "\u2063ENGRAM_MEMORIES\u2063"  # an invisible separator no user text is expected to contain


def local_prompt(template: Any, system: str, chunks: Sequence[str], history: Sequence[Message],
                 message: str) -> SegmentedPrompt:
    """A segmented prompt for the local engine (``template``: its ChatTemplate)."""
    text = template.render(_messages(system + HEADER + _MARK, history, message))
    prefix, suffix = text.split(_MARK, 1)
    return SegmentedPrompt(prefix=prefix, chunks=tuple(chunks), suffix=suffix)


def remote_messages(system: str, chunks: Sequence[str], history: Sequence[Message], message: str) -> list[Message]:
    """The same prompt as chat messages, for a remote model (or constrained JSON decoding)."""
    return _messages(system + HEADER + "".join(chunks), history, message)


def _messages(system: str, history: Sequence[Message], message: str) -> list[Message]:
    return [{"role": "system", "content": system}, *history, {"role": "user", "content": message}]
