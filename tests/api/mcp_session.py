"""Shared by the MCP tests: how to launch ``engram mcp`` and the checks one client session runs.

Each check takes a connected ``mcp.Client`` and asserts on real tool results from the server
subprocess (real SQLite file, real MiniLM), so the stdio and HTTP tests run the same bodies.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
from mcp import Client

from tests.helpers import ROOT

# The process settings of helper_common.md: set before the server imports torch.
SERVER_ENV = {
    "OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TOKENIZERS_PARALLELISM": "false",
    "PYTHONPATH": str(ROOT),
}
TOOL_NAMES = {"add_memory", "search_memory", "get_memory", "delete_memory", "search_facts", "entity_timeline"}
CALL_TIMEOUT = 300.0  # the first call loads MiniLM on a busy machine


def server_command(db: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "api.cli", "--db", db, "mcp", *extra]


def server_env() -> dict[str, str]:
    return {**os.environ, **SERVER_ENV}


async def call(client: Client, tool: str, **arguments: Any) -> tuple[bool, dict[str, Any]]:
    """(is_error, payload) of one tool call; checks that text and structured content agree."""
    result = await client.call_tool(tool, arguments, read_timeout_seconds=CALL_TIMEOUT)
    payload = result.structured_content
    assert isinstance(payload, dict), result
    assert json.loads(result.content[0].text) == payload
    return result.is_error, payload


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    is_error, payload = await call(client, tool, **arguments)
    assert not is_error, payload
    return payload


async def error(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    is_error, payload = await call(client, tool, **arguments)
    assert is_error, payload
    assert set(payload) == {"code", "message"} and payload["message"], payload
    return payload


# ---- checks ------------------------------------------------------------------------------------


async def check_lists_tools(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOL_NAMES
    search = tools["search_memory"].input_schema
    assert "query" in search["required"] and search["additionalProperties"] is False
    assert {"user_id", "agent_id", "session_id", "top_k", "filters"} <= set(search["properties"])
    assert tools["delete_memory"].annotations.destructive_hint is True


async def check_add_search_get_delete(client: Client, user: str, embedded: bool = True) -> None:
    """``embedded``: the server holds the memory, so notes and hits carry retention and links too."""
    added = await ok(client, "add_memory", content="I moved to Lisbon in May and I love the trams.",
                     user_id=user, metadata={"topic": "moving"}, timestamp="2026-05-03T10:00:00Z")
    await ok(client, "add_memory", content="My sister Emma works as a nurse in Berlin.", user_id=user)
    await ok(client, "add_memory", content="Someone else's note about Lisbon.", user_id=user + "-other")
    assert added["user_id"] == user and added["metadata"] == {"topic": "moving"}
    assert added["event_time"].startswith("2026-05-03T10:00:00")

    found = (await ok(client, "search_memory", query="which city did I move to?", user_id=user, top_k=5))["results"]
    assert found[0]["id"] == added["id"] and "Lisbon" in found[0]["content"]
    assert {h["user_id"] for h in found} == {user}  # the other user's Lisbon note stays out
    assert 0.0 < found[0]["retention"] <= 1.0 and found[0]["score"] > 0
    assert all(h.get("kind", "note") == "note" for h in found) and ("links" in found[0]) == embedded
    filtered = (await ok(client, "search_memory", query="city", user_id=user,
                         filters={"topic": {"eq": "moving"}}))["results"]
    assert [h["id"] for h in filtered] == [added["id"]]

    got = await ok(client, "get_memory", id=added["id"])
    assert got["content"] == added["content"] and got["recall_count"] >= 1 and ("retention" in got) == embedded

    assert await ok(client, "delete_memory", id=added["id"]) == {"deleted": added["id"]}
    assert (await error(client, "get_memory", id=added["id"]))["code"] == "not_found"
    assert (await error(client, "delete_memory", id=added["id"]))["code"] == "not_found"
    after = (await ok(client, "search_memory", query="which city did I move to?", user_id=user))["results"]
    assert added["id"] not in {h["id"] for h in after}


async def check_bad_input(client: Client) -> None:
    """Each bad call is a tool error with an EngramError code, and the server keeps serving."""
    assert (await error(client, "add_memory", content="no scope"))["code"] == "scope_required"
    assert (await error(client, "add_memory", content="   ", user_id="u"))["code"] == "empty_content"
    assert (await error(client, "add_memory", content="x", user_id="u", timestamp="not a time"))["code"] \
        == "invalid_timestamp"
    assert (await error(client, "search_memory", query="x", user_id="u", filters={"a": {"zz": 1}}))["code"] \
        == "invalid_filter"
    assert (await error(client, "search_memory", query="x", user_id="u", top_k=0))["code"] == "invalid_input"
    schema_bad = await error(client, "search_memory", query="x", user_id="u", top_k="many")
    assert schema_bad["code"] == "invalid_input" and "top_k" in schema_bad["message"]
    assert (await error(client, "search_memory", query="x", user="u"))["code"] == "invalid_input"  # unknown key
    assert (await error(client, "get_memory"))["code"] == "invalid_input"  # id missing
    assert (await error(client, "get_memory", id=""))["code"] == "invalid_input"
    await ok(client, "search_memory", query="still serving", user_id="u")


async def check_graph_tools(client: Client, user: str) -> None:
    """Notes become knowledge-graph facts in the server's background jobs; the fact tools find them."""
    for text, when in (("I live in Berlin.", "2022-03-01T10:00:00Z"), ("I moved to Madrid.", "2024-03-01T10:00:00Z")):
        await ok(client, "add_memory", content=text, user_id=user, timestamp=when)
    facts = await _poll_facts(client, user, "Madrid")
    assert facts[0]["object"] == "Madrid" and facts[0]["invalid_at"] is None  # current
    timeline = (await ok(client, "entity_timeline", entity=user, user_id=user))["facts"]
    assert [(f["object"], f["invalid_at"] is None) for f in timeline if f["predicate"] == "lives_in"] == \
        [("Berlin", False), ("Madrid", True)]
    assert (await error(client, "entity_timeline", entity="Nobody", user_id=user))["code"] == "not_found"
    assert (await error(client, "search_facts", query="x"))["code"] == "scope_required"


async def _poll_facts(client: Client, user: str, expect: str, timeout: float = 120.0) -> list[dict[str, Any]]:
    """search_facts until ``expect`` is a current fact's object (the graph job runs after the add)."""
    with anyio.move_on_after(timeout):
        while True:
            facts = (await ok(client, "search_facts", query="which city does the user live in?", user_id=user,
                              top_k=3))["facts"]
            if facts and facts[0]["object"] == expect:
                return facts
            await anyio.sleep(0.2)
    raise AssertionError(f"no current fact about {expect} after {timeout}s")


async def check_idempotent_add(client: Client, user: str) -> None:
    """A retried add_memory with its idempotency key stores one note; the key with other content
    is a conflict, and the first note stays."""
    args = {"content": "Booked the dentist for the 14th.", "user_id": user, "idempotency_key": f"{user}-dentist-1"}
    first = await ok(client, "add_memory", **args)
    again = await ok(client, "add_memory", **args)
    assert again["id"] == first["id"]
    other = await error(client, "add_memory", **{**args, "content": "Booked the vet for the 14th."})
    assert other["code"] == "conflict"
    found = await ok(client, "search_memory", query="dentist appointment", user_id=user)
    assert [h["id"] for h in found["results"] if "dentist" in h["content"]] == [first["id"]]
    assert not any("vet" in h["content"] for h in found["results"])
