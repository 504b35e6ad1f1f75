"""graph: the bi-temporal knowledge graph — episodes, entities, facts with validity intervals.

Import-light: the facade lives in ``graph.temporal_graph`` (SQL + networkx), extractors in
``graph.extract_rules`` (no LLM) and ``graph.extract_llm``.
Usage: ``from graph.temporal_graph import TemporalGraph``.
"""
from graph.types import Entity, Episode, ExtractedEntity, ExtractedFact, Extraction, Fact, IngestResult, Merge, Supersession

__all__ = ["Entity", "Episode", "ExtractedEntity", "ExtractedFact", "Extraction", "Fact", "IngestResult", "Merge",
           "Supersession"]
