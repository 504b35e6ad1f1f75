"""graph: the bi-temporal knowledge graph — episodes, entities, facts with validity intervals.

Map of the package (one concept per file):

    types.py           Entity, Fact (renders "... (since 2023-05, previously Berlin)"), Episode, Extraction
    protocols.py       TextEmbedder, JsonEngine, Extractor: what api/ wires in
    dates.py           relative dates ("last June", "two weeks ago") against the episode's time
    patterns.py        the rule extractor's regex table; extract_rules.py runs it (no LLM)
    extract_llm.py     LLMExtractor on any JsonEngine: schema-validated JSON, one repair retry
    resolution.py      exact → acronym → fuzzy → embedding → LLM entity resolution; EntityIndex
    temporal.py        contradiction handling on functional predicates, pure functions
    ingest.py          Planner: one extraction → one WritePlan (resolved, embedded, decided)
    schema.py rows.py store.py   SQL tables and the store (the only sqlalchemy users)
    view.py            the networkx MultiDiGraph, derived from SQL
    queries.py temporal_graph.py the TemporalGraph facade: ingest, facts/as_of/history, walks, merges

Import-light: this module exports the plain types only.
Usage: ``from graph.temporal_graph import TemporalGraph``.
"""
from graph.types import Entity, Episode, ExtractedEntity, ExtractedFact, Extraction, Fact, IngestResult, Merge, Supersession

__all__ = ["Entity", "Episode", "ExtractedEntity", "ExtractedFact", "Extraction", "Fact", "IngestResult", "Merge",
           "Supersession"]
