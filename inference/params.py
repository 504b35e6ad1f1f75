"""Generation parameters shared by every engine."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GenerationParams:
    """How to sample. Usage: ``GenerationParams(max_tokens=64, temperature=0.0)``.

    ``temperature == 0`` means greedy decoding; ``seed`` makes sampling reproducible.
    """

    max_tokens: int = 256
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        from inference.errors import InvalidParams

        if self.max_tokens < 1:
            raise InvalidParams("max_tokens must be >= 1")
        if self.temperature < 0:
            raise InvalidParams("temperature must be >= 0")
        if self.top_k < 0:
            raise InvalidParams("top_k must be >= 0")
        if not 0 < self.top_p <= 1:
            raise InvalidParams("top_p must be in (0, 1]")
        if self.repetition_penalty <= 0:
            raise InvalidParams("repetition_penalty must be > 0")
