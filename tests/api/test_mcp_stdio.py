"""``engram mcp`` over stdio: the SDK's stdio client launches the server as a subprocess on a real
SQLite file and runs real tool calls (one session, so MiniLM loads once)."""
import anyio
from mcp import Client, StdioServerParameters

from tests.api import mcp_session as s
from tests.helpers import ROOT


def test_stdio_session(tmp_path):
    command, *args = s.server_command(str(tmp_path / "stdio.db"))
    params = StdioServerParameters(command=command, args=args, env=s.SERVER_ENV, cwd=str(ROOT))

    async def session() -> None:
        async with Client(params) as client:
            await s.check_lists_tools(client)
            await s.check_add_search_get_delete(client, "ann")
            await s.check_bad_input(client)
            await s.check_graph_tools(client, "gus")

    anyio.run(session)
