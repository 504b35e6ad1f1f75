"""``engram mcp --url``: the MCP tools over a running Engram service through the SDK client —
here the real REST app in-process (Starlette's TestClient is the SDK's httpx client), with the
same client-session checks as the embedded server."""
import anyio
from mcp import Client

from api.client import Client as EngramClient
from api.mcp_backends import RemoteMemory
from api.mcp_server import build_server
from tests.api import mcp_session as s
from tests.api.rest_support import rest  # noqa: F401  (fixture)


def _session(sdk, check):
    async def run():
        async with Client(build_server(RemoteMemory(sdk))) as client:
            await check(client)

    anyio.run(run)


def _sdk(rest, headers):  # noqa: F811
    return EngramClient(api_key=headers["Authorization"].removeprefix("Bearer "), http=rest.client)


def test_notes_through_the_service(rest):  # noqa: F811
    _session(_sdk(rest, rest.acme), lambda c: s.check_add_search_get_delete(c, "ann", embedded=False))


def test_bad_input_through_the_service(rest):  # noqa: F811
    async def check(client):
        assert (await s.error(client, "add_memory", content="no scope"))["code"] == "scope_required"
        assert (await s.error(client, "get_memory", id="no-such-note"))["code"] == "not_found"
        assert (await s.error(client, "search_memory", query="x", user_id="u", filters={"a": {"zz": 1}}))["code"] \
            == "invalid_filter"
        await s.ok(client, "search_memory", query="still serving", user_id="u")

    _session(_sdk(rest, rest.acme), check)


def test_graph_tools_through_the_service(rest):  # noqa: F811
    _session(_sdk(rest, rest.acme), lambda c: s.check_graph_tools(c, "gus"))


def test_a_bad_key_is_a_tool_error(rest):  # noqa: F811
    async def check(client):
        assert (await s.error(client, "search_memory", query="x", user_id="u"))["code"] == "unauthorized"

    _session(EngramClient(api_key="egm_wrong", http=rest.client), check)


def test_tenants_stay_apart(rest):  # noqa: F811
    async def check_acme(client):
        note = await s.ok(client, "add_memory", content="Acme's secret launch date is in March.", user_id="zed")
        return note

    async def run():
        async with Client(build_server(RemoteMemory(_sdk(rest, rest.acme)))) as acme:
            note = await check_acme(acme)
        async with Client(build_server(RemoteMemory(_sdk(rest, rest.globex)))) as globex:
            assert (await s.error(globex, "get_memory", id=note["id"]))["code"] == "not_found"
            found = (await s.ok(globex, "search_memory", query="secret launch date", user_id="zed"))["results"]
            assert found == []

    anyio.run(run)
