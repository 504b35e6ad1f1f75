"""How the MCP face reports failures, in-process on a real Engram: a bug in the backend is an
``internal_error`` tool error that leaks nothing, and the session keeps working; an unknown tool is
a protocol error; bad input is a tool error with the EngramError code."""
import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from api.mcp_backends import EmbeddedMemory
from api.mcp_server import build_server
from tests.api import mcp_session as s


class SearchCrashes:
    """The real memory, except that search hits a bug."""

    def __init__(self, mem):
        self._mem = mem

    def search(self, *_args, **_kwargs):
        raise RuntimeError("secret internals /etc/passwd")

    def __getattr__(self, name):
        return getattr(self._mem, name)


def _session(backend, check):
    async def run():
        async with Client(build_server(EmbeddedMemory(backend))) as client:
            await check(client)

    anyio.run(run)


def test_a_backend_bug_is_an_internal_error_and_the_session_goes_on(mem):
    async def check(client):
        payload = await s.error(client, "search_memory", query="anything", user_id="u")
        assert payload["code"] == "internal_error" and "secret" not in payload["message"]
        added = await s.ok(client, "add_memory", content="Still writing after the crash.", user_id="u")
        assert (await s.ok(client, "get_memory", id=added["id"]))["content"] == "Still writing after the crash."

    _session(SearchCrashes(mem), check)


def test_unknown_tool_is_a_protocol_error(mem):
    async def check(client):
        with pytest.raises(MCPError, match="unknown tool"):
            await client.call_tool("drop_database", {})
        await s.ok(client, "search_memory", query="x", user_id="u")

    _session(mem, check)


def test_bad_input_in_process(mem):
    _session(mem, s.check_bad_input)


def test_a_retried_add_with_its_key_stores_one_note(mem):
    _session(mem, lambda client: s.check_idempotent_add(client, "ida"))
