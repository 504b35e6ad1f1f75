"""The protocol every engine implements: local GGUF engine and remote engines via litellm."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from inference.params import GenerationParams

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
Prompt = str | Sequence[Message]


@runtime_checkable
class Engine(Protocol):
    """Text generation behind one small surface.

    Usage: ``engine.generate([{"role": "user", "content": "hi"}], GenerationParams())``.
    ``generate`` returns the whole text; ``stream`` yields text pieces as they are decoded.
    ``complete_json`` returns a dict that validates against ``schema``.
    """

    model_id: str

    def generate(self, prompt: Prompt, params: GenerationParams | None = None) -> str: ...

    def stream(self, prompt: Prompt, params: GenerationParams | None = None) -> Iterator[str]: ...

    def complete_json(
        self, messages: Sequence[Message], schema: dict[str, Any], params: GenerationParams | None = None
    ) -> dict[str, Any]: ...

    def count_tokens(self, prompt: Prompt) -> int: ...
