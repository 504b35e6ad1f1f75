"""The configuration of one Engram instance, assembled from each package's own config."""
from __future__ import annotations

from dataclasses import dataclass, field

from api.graph_search import GraphSearchConfig
from memory.config import MemoryConfig
from retrieval.bm25 import BM25Config
from retrieval.ranking import RankingConfig
from retrieval.vector_index import VectorConfig


@dataclass(frozen=True)
class EngramConfig:
    """Usage: ``Engram(path, config=EngramConfig(ranking=RankingConfig(w_recency=0.0)))``."""

    memory: MemoryConfig = field(default_factory=MemoryConfig)
    ranking: RankingConfig = field(default_factory=RankingConfig)
    vectors: VectorConfig = field(default_factory=VectorConfig)
    bm25: BM25Config = field(default_factory=BM25Config)
    graph_search: GraphSearchConfig = field(default_factory=GraphSearchConfig)
    max_top_k: int = 1000
    max_query_chars: int = 10_000
    max_batch: int = 10_000
    embed_batch: int = 64
    durable: bool = True
    persist_index: bool = True
    graph_llm: bool = True  # with an engine, extract graph facts with it (else the rule extractor)
    job_poll_s: float = 0.5  # how often an idle worker looks for due jobs (it is woken on enqueue anyway)
