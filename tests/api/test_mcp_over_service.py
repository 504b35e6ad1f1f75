"""End to end: ``engram serve`` (uvicorn on 127.0.0.1) and ``engram mcp --url`` launched by the MCP
SDK's stdio client, the key passed in ``ENGRAM_KEY``: an agent's MCP session writes into the service."""
import os
import subprocess
import sys

import anyio
import pytest
from mcp import Client, StdioServerParameters

from api.client import Client as EngramClient
from tests.api import mcp_session as s
from tests.api.test_serve import _free_port, _wait_ready
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    data = tmp_path_factory.mktemp("mcp_served")
    env = {**os.environ, **s.SERVER_ENV, "ENGRAM_DATA_DIR": str(data), "ENGRAM_ADMIN_KEY": "mcp-admin",
           "ENGRAM_KEY_CACHE_SECONDS": "0", "ENGRAM_DURABLE": "false", "ENGRAM_LLM": "none"}
    made = subprocess.run([sys.executable, "-m", "api.cli", "keys", "create", "--tenant", "acme"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=True)
    key = made.stdout.strip().splitlines()[-1]
    port = _free_port()
    with (data / "serve.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url, key
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_mcp_stdio_over_the_service(service):
    url, key = service
    # No --db: the MCP process holds no memory of its own, only the service's address and key.
    params = StdioServerParameters(command=sys.executable, args=["-m", "api.cli", "mcp", "--url", url],
                                   env={**s.SERVER_ENV, "ENGRAM_KEY": key}, cwd=str(ROOT))

    async def session():
        async with Client(params) as client:
            await s.check_lists_tools(client)
            await s.check_add_search_get_delete(client, "ann", embedded=False)
            await s.check_idempotent_add(client, "ida")
            note = await s.ok(client, "add_memory", content="The MCP session wrote this note.", user_id="eve")
            return note

    note = anyio.run(session)
    with EngramClient(url, api_key=key) as sdk:  # the note is in the service, seen by any client
        assert sdk.get(note["id"])["content"] == "The MCP session wrote this note."


def test_a_wrong_key_is_a_tool_error(service):
    url, _ = service
    params = StdioServerParameters(command=sys.executable, args=["-m", "api.cli", "mcp", "--url", url,
                                                                 "--api-key", "egm_wrong"],
                                   env=s.SERVER_ENV, cwd=str(ROOT))

    async def session():
        async with Client(params) as client:
            assert (await s.error(client, "search_memory", query="x", user_id="u"))["code"] == "unauthorized"

    anyio.run(session)
