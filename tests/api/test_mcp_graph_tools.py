"""The graph tools (search_facts, entity_timeline) through a real MCP client session, in-process,
on a real TemporalGraph (SQLite, the rule extractor, the real MiniLM) beside a real Engram."""
import anyio
import pytest
from mcp import Client

from api.mcp_server import build_server
from graph.extract_rules import RuleExtractor
from graph.temporal_graph import TemporalGraph
from memory.database import open_engine, sqlite_url
from memory.types import Scope
from tests.api import mcp_session as s


class MemoryWithGraph:
    """An Engram plus a knowledge graph: the shape of a backend whose ``graph`` attribute is set."""

    def __init__(self, mem, graph):
        self.graph = graph
        self._mem = mem

    def __getattr__(self, name):
        return getattr(self._mem, name)


@pytest.fixture()
def backend(mem, tmp_path, embedder, clock):
    engine = open_engine(sqlite_url(tmp_path / "graph.db"), durable=False)
    graph = TemporalGraph(engine, embedder, RuleExtractor(), clock)
    for text, when in (("I live in Berlin.", "2022-03-01T10:00:00Z"),
                       ("I moved to Madrid.", "2024-03-01T10:00:00Z"),
                       ("My sister Emma works at Equinor.", "2024-04-01T10:00:00Z")):
        graph.ingest(text, None, Scope(user_id="u1"), when)
    yield MemoryWithGraph(mem, graph)
    engine.dispose()


def _session(backend, check):
    async def run():
        async with Client(build_server(backend)) as client:
            await check(client)

    anyio.run(run)


def test_search_facts_current_and_as_of(backend):
    async def check(client):
        now = (await s.ok(client, "search_facts", query="which city does the user live in?", user_id="u1",
                          top_k=3))["facts"]
        assert now[0]["object"] == "Madrid" and now[0]["current"] is True and now[0]["score"] > 0
        assert "Berlin" not in [f["object"] for f in now]
        then = (await s.ok(client, "search_facts", query="which city does the user live in?", user_id="u1",
                           top_k=1, as_of="2023-01-01"))["facts"]
        assert then[0]["object"] == "Berlin" and then[0]["invalid_at"].startswith("2024-03-01")
        other = (await s.ok(client, "search_facts", query="city", user_id="someone-else"))["facts"]
        assert other == []

    _session(backend, check)


def test_entity_timeline_in_world_time_order(backend):
    async def check(client):
        timeline = await s.ok(client, "entity_timeline", entity="u1", user_id="u1")
        cities = [(f["object"], f["current"]) for f in timeline["facts"] if f["predicate"] == "lives_in"]
        assert cities == [("Berlin", False), ("Madrid", True)]
        assert all({"subject", "predicate", "object", "text", "valid_at", "created_at"} <= set(f)
                   for f in timeline["facts"])
        emma = await s.ok(client, "entity_timeline", entity="Emma", user_id="u1")
        assert "Equinor" in [f["object"] for f in emma["facts"]]
        missing = await s.error(client, "entity_timeline", entity="Nobody", user_id="u1")
        assert missing["code"] == "not_found"
        bad = await s.error(client, "search_facts", query="x", user_id="u1", as_of="yesterday-ish")
        assert bad["code"] == "invalid_timestamp"

    _session(backend, check)
