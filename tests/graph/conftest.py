"""Fixtures of the graph tests: a TemporalGraph on a real database (SQLite file or PostgreSQL schema,
see ``database_url``) with the real MiniLM embedder."""
from datetime import timedelta

import pytest

from graph.extract_rules import RuleExtractor
from graph.temporal_graph import TemporalGraph
from memory.database import open_engine
from memory.timeutil import to_utc


@pytest.fixture()
def sql_engine(database_url):
    engine = open_engine(database_url, durable=False)
    yield engine
    engine.dispose()


@pytest.fixture()
def graph(sql_engine, embedder, clock):
    return TemporalGraph(sql_engine, embedder, RuleExtractor(), clock)


class Chat:
    """Feeds a conversation to a graph: each message at its own time, note ids n0, n1, ..."""

    def __init__(self, graph, clock, scope):
        self.graph, self.clock, self.scope, self.results = graph, clock, scope, []

    def say(self, text, when):
        t = to_utc(when)
        self.clock.set(t + timedelta(minutes=1))  # Engram learns it a minute after it is said
        result = self.graph.ingest(text, f"n{len(self.results)}", self.scope, t)
        self.results.append(result)
        return result


@pytest.fixture()
def chat(graph, clock):
    from memory.types import Scope

    return Chat(graph, clock, Scope(user_id="u1", session_id="s1"))
