"""Engram as an MCP server (official ``mcp`` SDK), over stdio or streamable HTTP.

The tools live in ``api.mcp_tools``; this module is the protocol face: it lists them, runs a call
in a worker thread (the backend blocks on SQL and the embedder, and the event loop must keep
serving other sessions) and turns failures into MCP tool errors whose text and structured content
are ``{"code", "message"}`` with the ``EngramError`` code, so bad input never stops the server.
It uses the SDK's low-level ``Server`` rather than ``MCPServer``: ``MCPServer`` validates arguments
before a tool runs and reports a mismatch as bare text, while here one boundary gives every failure
(schema mismatch included, as ``invalid_input``) a code.

Usage::

    serve_stdio(EmbeddedMemory(Engram("engram.db")))         # what ``engram --db engram.db mcp`` runs
    serve_http(RemoteMemory(Client(url, api_key=key)), port=8765)   # http://127.0.0.1:8765/mcp over a service
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette

from api.mcp_auth import BearerGuard, require_token
from api.mcp_backends import MemoryBackend
from api.mcp_tools import TOOLS, ToolSpec
from memory.errors import EngramError

log = logging.getLogger("engram.mcp")

SERVER_NAME = "engram"
INSTRUCTIONS = (
    "Engram is a long-term memory. Call search_memory before answering questions about the user, "
    "add_memory to remember what they tell you; every call names a scope (user_id, agent_id or session_id)."
)


def build_server(backend: MemoryBackend, version: str = "0.1.0") -> Server[Any]:
    """The low-level MCP server with Engram's tools bound to ``backend``."""

    async def list_tools(_ctx: Any, _params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_tool(spec) for spec in TOOLS.values()])

    async def call_tool(_ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        spec = TOOLS.get(params.name)
        if spec is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool {params.name!r}")
        return await call(spec, backend, params.arguments or {})

    return Server(SERVER_NAME, version=version, instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


async def call(spec: ToolSpec, backend: MemoryBackend, arguments: dict[str, Any]) -> types.CallToolResult:
    """Run one tool call; an ``EngramError`` becomes a tool error with its code, anything else a
    tool error with code ``internal_error`` (the traceback goes to the server log, not the client)."""
    try:
        payload = await anyio.to_thread.run_sync(spec.run, backend, arguments)
    except EngramError as exc:
        log.info("tool %s refused: %s: %s", spec.name, exc.code, exc)
        return _result({"code": exc.code, "message": str(exc)}, is_error=True)
    except Exception:
        log.exception("tool %s failed", spec.name)
        return _result({"code": "internal_error", "message": f"{spec.name} failed; see the server log"},
                       is_error=True)
    return _result(payload, is_error=False)


def serve_stdio(backend: MemoryBackend) -> None:
    """Serve one client over stdin/stdout until it disconnects."""
    server = build_server(backend)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)


def http_app(backend: MemoryBackend, *, host: str = "127.0.0.1", path: str = "/mcp",
             token: str | None = None) -> Any:
    """The streamable-HTTP ASGI app (endpoint ``path``). On a loopback ``host`` the SDK turns on
    DNS-rebinding protection: only localhost Host/Origin headers are accepted. With ``token``,
    every request needs ``Authorization: Bearer <token>`` (api/mcp_auth.py)."""
    app: Starlette = build_server(backend).streamable_http_app(streamable_http_path=path, host=host)
    return BearerGuard(app, token) if token else app


def serve_http(backend: MemoryBackend, *, host: str = "127.0.0.1", port: int = 8765, path: str = "/mcp",
               token: str | None = None) -> None:
    """Serve streamable HTTP with uvicorn until interrupted. A non-loopback ``host`` needs a token."""
    require_token(host, token)
    uvicorn.run(http_app(backend, host=host, path=path, token=token), host=host, port=port, log_level="warning")


def _tool(spec: ToolSpec) -> types.Tool:
    hints = types.ToolAnnotations(read_only_hint=spec.read_only, destructive_hint=spec.name == "delete_memory")
    return types.Tool(name=spec.name, description=spec.description, input_schema=spec.input_schema(),
                      annotations=hints)


def _result(payload: dict[str, Any], *, is_error: bool) -> types.CallToolResult:
    # The same JSON twice: as text for clients that only show content, structured for programs.
    # The round trip turns numpy scalars (scores) into plain numbers the wire model accepts.
    text = json.dumps(payload, ensure_ascii=False, default=_plain)
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=json.loads(text),
                                is_error=is_error)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalar
    return item() if callable(item) else str(value)
