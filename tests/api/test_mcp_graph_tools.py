"""The graph tools through a real MCP client session, in-process on a real Engram (SQLite, MiniLM,
the rule extractor): notes added with add_memory become facts through the job queue, and
search_facts / entity_timeline read them back."""
import anyio
import pytest
from mcp import Client

from api.mcp_backends import EmbeddedMemory
from api.mcp_server import build_server
from tests.api import mcp_session as s


@pytest.fixture()
def told(mem):
    """A memory told three things over two years, its graph jobs run."""
    async def tell(client):
        for text, when in (("I live in Berlin.", "2022-03-01T10:00:00Z"),
                           ("I moved to Madrid.", "2024-03-01T10:00:00Z"),
                           ("My sister Emma works at Equinor.", "2024-04-01T10:00:00Z")):
            await s.ok(client, "add_memory", content=text, user_id="u1", timestamp=when)

    _session(mem, tell)
    assert mem.wait_for_jobs(timeout=120)
    return mem


def _session(backend, check):
    async def run():
        async with Client(build_server(EmbeddedMemory(backend))) as client:
            await check(client)

    anyio.run(run)


def test_search_facts_current_and_as_of(told):
    async def check(client):
        now = (await s.ok(client, "search_facts", query="which city does the user live in?", user_id="u1",
                          top_k=3))["facts"]
        assert now[0]["object"] == "Madrid" and now[0]["current"] is True and now[0]["score"] > 0
        assert "Berlin" not in [f["object"] for f in now]
        then = (await s.ok(client, "search_facts", query="which city does the user live in?", user_id="u1",
                           top_k=1, as_of="2023-01-01"))["facts"]
        assert then[0]["object"] == "Berlin" and then[0]["invalid_at"].startswith("2024-03-01")
        assert (await s.ok(client, "search_facts", query="city", user_id="someone-else"))["facts"] == []

    _session(told, check)


def test_entity_timeline_in_world_time_order(told):
    async def check(client):
        timeline = await s.ok(client, "entity_timeline", entity="u1", user_id="u1")
        cities = [(f["object"], f["current"]) for f in timeline["facts"] if f["predicate"] == "lives_in"]
        assert cities == [("Berlin", False), ("Madrid", True)]
        assert all({"subject", "predicate", "object", "rendered", "valid_at", "created_at"} <= set(f)
                   for f in timeline["facts"])
        emma = await s.ok(client, "entity_timeline", entity="Emma", user_id="u1")
        assert "Equinor" in [f["object"] for f in emma["facts"]]
        assert (await s.error(client, "entity_timeline", entity="Nobody", user_id="u1"))["code"] == "not_found"
        bad = await s.error(client, "search_facts", query="x", user_id="u1", as_of="yesterday-ish")
        assert bad["code"] == "invalid_timestamp"

    _session(told, check)


def test_deleting_a_note_withdraws_its_facts(told):
    async def check(client):
        hits = (await s.ok(client, "search_memory", query="I moved to Madrid", user_id="u1", top_k=1))["results"]
        await s.ok(client, "delete_memory", id=hits[0]["id"])

    _session(told, check)
    assert told.wait_for_jobs(timeout=120)

    async def after(client):
        now = (await s.ok(client, "search_facts", query="which city does the user live in?", user_id="u1"))["facts"]
        assert "Madrid" not in [f["object"] for f in now if f["current"]]

    _session(told, after)
