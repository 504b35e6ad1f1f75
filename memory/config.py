"""Configuration of the memory layer, as plain dataclasses passed down from the edge."""
from __future__ import annotations

from dataclasses import dataclass, field

from memory.forgetting import ForgettingConfig


@dataclass(frozen=True)
class LinkingConfig:
    """Zettelkasten linking on insert: how many neighbours to look at and when to link/evolve.

    Thresholds are cosine similarities of MiniLM embeddings; 0.45 links notes on the same topic,
    0.65 is required before a neighbour's keywords/tags are changed.
    """

    neighbours: int = 5
    link_threshold: float = 0.45
    evolve_threshold: float = 0.65
    max_keywords: int = 10
    max_tags: int = 8


@dataclass(frozen=True)
class JobConfig:
    """The durable job queue: attempts before ``failed``, exponential backoff between them
    (``backoff_s * 2**(attempt-1)``, capped), and how long a claim holds before another worker may
    take the job over (a crashed worker's lease simply runs out)."""

    max_attempts: int = 5
    backoff_s: float = 2.0
    max_backoff_s: float = 600.0
    lease_s: float = 300.0
    claim_batch: int = 8  # jobs a worker claims per (durable) claim transaction; each keeps its own lease


@dataclass(frozen=True)
class EnrichConfig:
    """LLM note construction and evolution (only with an engine): how many neighbours one call
    sees, the token budget of the answer, and the bounds every answer is checked against."""

    neighbours: int = 3
    max_tokens: int = 256
    max_keywords: int = 8
    max_tags: int = 6
    max_term_chars: int = 40
    max_candidates: int = 24  # note words offered as keyword choices (a bigger enum: a bigger grammar)
    max_context_chars: int = 200


@dataclass(frozen=True)
class MemoryConfig:
    """Everything memory/ can be tuned by. Usage: ``MemoryConfig(max_content_chars=10_000)``."""

    forgetting: ForgettingConfig = field(default_factory=ForgettingConfig)
    linking: LinkingConfig = field(default_factory=LinkingConfig)
    jobs: JobConfig = field(default_factory=JobConfig)
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
    max_content_chars: int = 100_000
    max_metadata_bytes: int = 64_000
    default_importance: float = 0.5
    # add_many calls of at least this many notes may drop two secondary indexes until their end
    # (memory/deferred_indexes.py); below it, one build would cost more than it saves.
    bulk_index_min_notes: int = 2048
