"""The small collaborators the graph needs, as Protocols; api/ wires concrete objects in.

Usage: any ``retrieval.embedder.Embedder`` is a ``TextEmbedder``; any ``inference`` engine is a
``JsonEngine``; ``RuleExtractor()`` and ``LLMExtractor(engine)`` are ``Extractor``s.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np

from graph.types import Extraction


@runtime_checkable
class TextEmbedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of size ``dim``."""

    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


@runtime_checkable
class JsonEngine(Protocol):
    """Returns a dict for chat ``messages`` that should validate against ``schema``."""

    def complete_json(self, messages: Sequence[dict[str, str]], schema: dict[str, Any]) -> dict[str, Any]: ...


@runtime_checkable
class Extractor(Protocol):
    """Finds entities and facts in one episode. Never raises for bad model output: sets ``error``."""

    name: str

    def extract(self, text: str, reference_time: datetime) -> Extraction: ...
