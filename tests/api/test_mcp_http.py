"""``engram mcp --transport http``: the server runs as a subprocess on 127.0.0.1 (a real uvicorn on
a free port, a real SQLite file) and the SDK's streamable-HTTP client talks to it."""
import socket
import subprocess
import time
from contextlib import contextmanager

import anyio
import httpx
import pytest
from mcp import Client

from tests.api import mcp_session as s
from tests.api.served_support import free_port
from tests.helpers import ROOT


def _wait_listening(proc: subprocess.Popen, port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listening on port {port}")


@contextmanager
def _server(folder, *extra: str):
    """``engram mcp --transport http`` on a free loopback port; yields its endpoint URL."""
    port = free_port()
    cmd = s.server_command(str(folder / "http.db"), "--transport", "http", "--port", str(port), *extra)
    # The server's log goes to a file (a pipe nobody reads could fill and block the server).
    with (folder / "server.log").open("w") as log:
        proc = subprocess.Popen(cmd, env=s.server_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    try:
        _wait_listening(proc, port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with _server(tmp_path_factory.mktemp("mcp_http")) as endpoint:
        yield endpoint


def _session(url: str, *checks):
    async def run() -> None:
        async with Client(url) as client:
            for check in checks:
                await check(client)

    anyio.run(run)


def test_lists_tools(url):
    _session(url, s.check_lists_tools)


def test_add_search_get_delete(url):
    _session(url, lambda c: s.check_add_search_get_delete(c, "bob"))


def test_bad_input_is_a_tool_error_and_the_server_keeps_serving(url):
    _session(url, s.check_bad_input)


def test_graph_tools(url):
    _session(url, lambda c: s.check_graph_tools(c, "gus"))


def test_a_note_added_in_one_session_is_found_in_the_next(url):
    async def add(client):
        await s.ok(client, "add_memory", content="Carol's favourite tea is genmaicha.", user_id="carol")

    async def find(client):
        hits = (await s.ok(client, "search_memory", query="what tea does carol like", user_id="carol"))["results"]
        assert hits and "genmaicha" in hits[0]["content"]

    _session(url, add)
    _session(url, find)


def test_concurrent_sessions_are_served(url):
    """Tool calls run in worker threads, so several sessions progress at once."""
    async def one(i: int) -> None:
        async with Client(url) as client:
            await s.ok(client, "add_memory", content=f"Parallel note number {i} about kites.", user_id="dan")

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(one, i)
        async with Client(url) as client:
            hits = (await s.ok(client, "search_memory", query="kites", user_id="dan", top_k=10))["results"]
            assert sorted(h["content"] for h in hits) == sorted(f"Parallel note number {i} about kites." for i in range(4))

    anyio.run(run)


def test_foreign_host_header_is_refused(url):
    """DNS-rebinding protection on the loopback server: a page on another origin cannot reach it."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    resp = httpx.post(url, json=body, headers={"Host": "evil.example", "Accept": "application/json, text/event-stream"})
    assert resp.status_code in (400, 403, 421)


TOKEN = "mcp-test-token-0123456789"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """The same server started with --token."""
    with _server(tmp_path_factory.mktemp("mcp_http_token"), "--token", TOKEN) as endpoint:
        yield endpoint


def test_with_a_token_only_requests_that_carry_it_are_served(guarded):
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        resp = httpx.post(guarded, json=body, headers={**accept, **headers})
        assert resp.status_code == 401 and resp.json()["code"] == "unauthorized"

    async def run() -> None:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
        async with Client(streamable_http_client(guarded, http_client=http)) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"add_memory", "search_memory"} <= names

    anyio.run(run)


def test_off_loopback_the_server_refuses_to_start_without_a_token(tmp_path):
    cmd = s.server_command(str(tmp_path / "x.db"), "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port()))
    env = {k: v for k, v in s.server_env().items() if k != "ENGRAM_MCP_TOKEN"}
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "needs a token" in done.stderr
    assert not (tmp_path / "x.db").exists()  # refused before opening anything
