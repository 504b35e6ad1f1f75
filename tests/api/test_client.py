"""The SDK against the real app in-process (Starlette's TestClient is an httpx.Client; the async
client runs on httpx's ASGI transport), with typed errors mapped back from the JSON codes."""
import asyncio
import subprocess
import sys

import httpx
import pytest

from api.client import AsyncClient, Client
from api.errors import ConnectionFailed, Forbidden, PayloadTooLarge, Unauthorized, ValidationFailed
from memory.errors import Conflict, EmptyContent, InvalidFilter, InvalidInput, NotFound, ScopeRequired
from tests.api.rest_support import rest  # noqa: F401  (fixture)
from tests.helpers import ROOT


def _client(rest, headers):
    return Client(api_key=headers["Authorization"].split(" ", 1)[1], http=rest.client)


def test_sync_client_mirrors_engram(rest):
    mem = _client(rest, rest.acme)
    [note] = mem.add("I moved to Lisbon in May", user_id="sdk_ann", timestamp="2026-05-03T10:00:00Z")
    turns = mem.add([{"role": "user", "content": "My cat Luna hates the rain"}], user_id="sdk_ann", session_id="s1")
    hits = mem.search("which city did I move to", user_id="sdk_ann", top_k=2)
    assert hits[0]["id"] == note["id"] and hits[0]["dense"] is not None
    assert mem.get(note["id"])["content"] == note["content"]
    assert {n["id"] for n in mem.get_all(user_id="sdk_ann")} == {note["id"], turns[0]["id"]}
    assert [n["id"] for n in mem.get_all(user_id="sdk_ann", filters={"role": "user"})] == [turns[0]["id"]]
    assert mem.update(note["id"], content="I moved to Porto in June")["content"] == "I moved to Porto in June"
    assert [h["action"] for h in mem.history(note["id"])] == ["add", "update"]
    assert isinstance(mem.links(note["id"]), list)
    archived = mem.consolidate(user_id="sdk_ann", threshold=1.0, now="2031-01-01")
    assert set(archived) == {note["id"], turns[0]["id"]}
    assert mem.restore(archived) == archived
    exported = mem.export(user_id="sdk_ann")
    mem.delete(note["id"])
    with pytest.raises(NotFound):
        mem.get(note["id"])
    assert mem.health() == {"status": "ok"} and mem.ready()["status"] == "ready"
    assert exported.count("\n") == 2


def test_errors_are_the_embedded_classes(rest):
    mem = _client(rest, rest.acme)
    with pytest.raises(ScopeRequired):
        mem.add("no scope")
    with pytest.raises(EmptyContent):
        mem.add(" ", user_id="u")
    with pytest.raises(InvalidFilter) as err:
        mem.search("q", user_id="u", filters={"x": {"near": 1}})
    assert isinstance(err.value, InvalidInput) and err.value.code == "invalid_filter"
    with pytest.raises(ValidationFailed):
        mem.search("q", user_id="u", top_k=10_000)
    with pytest.raises(PayloadTooLarge):
        mem.add([{"content": f"t{i}"} for i in range(21)], user_id="u")
    with pytest.raises(Unauthorized):
        Client(api_key="egm_x_y", http=rest.client).get_all(user_id="u")
    with pytest.raises(Forbidden):
        Client(api_key=rest.admin["Authorization"].split(" ", 1)[1], http=rest.client).get_all(user_id="u")


def test_admin_through_the_sdk(rest):
    admin = Client(api_key=rest.admin["Authorization"].split(" ", 1)[1], http=rest.client)
    admin.create_tenant("sdk_tenant")
    with pytest.raises(Conflict):
        admin.create_tenant("sdk_tenant")
    made = admin.create_key("sdk_tenant", "bot")
    mine = Client(api_key=made["key"], http=rest.client)
    assert mine.get_all(user_id="u") == []
    admin.revoke_key(made["id"])
    with pytest.raises(Unauthorized):
        mine.get_all(user_id="u")
    assert "sdk_tenant" in [t["id"] for t in admin.list_tenants()]


def test_async_client(rest):
    key = rest.acme["Authorization"].split(" ", 1)[1]

    async def run():
        transport = httpx.ASGITransport(app=rest.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            mem = AsyncClient(api_key=key, http=http)
            [note] = await mem.add("Async notes arrive too", user_id="sdk_async")
            hits = await mem.search("async", user_id="sdk_async")
            with pytest.raises(NotFound):
                await mem.get("00000000-0000-0000-0000-000000000000")
            return note, hits

    note, hits = asyncio.run(run())
    assert hits[0]["id"] == note["id"]


def test_unreachable_server_is_connection_failed():
    with Client("http://127.0.0.1:9", api_key="k", timeout=2) as mem, pytest.raises(ConnectionFailed):
        mem.health()


def test_importing_the_sdk_pulls_no_heavy_library():
    code = ("import sys, api.client; heavy = [m for m in ('torch', 'faiss', 'sqlalchemy', 'fastapi', 'numpy') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_graph_and_jobs_through_the_sdk(rest):
    import time

    mem = _client(rest, rest.acme)
    mem.add("I live in Berlin.", user_id="sdk_g", timestamp="2022-03-01T10:00:00Z")
    mem.add("We moved to Paris last June.", user_id="sdk_g", timestamp="2024-02-10T10:00:00Z")
    deadline = time.monotonic() + 90
    while any(j["state"] in ("queued", "running") for j in mem.jobs()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [f["object"] for f in mem.facts(user_id="sdk_g", predicate="lives_in")] == ["Paris"]
    assert [f["object"] for f in mem.facts(user_id="sdk_g", predicate="lives_in", as_of="2023-01-01")] == ["Berlin"]
    assert {"Berlin", "Paris"} <= {e["name"] for e in mem.entities(user_id="sdk_g")}
    user = mem.facts(user_id="sdk_g", predicate="lives_in")[0]["subject_id"]
    assert [f["object"] for f in mem.timeline(user, user_id="sdk_g") if f["predicate"] == "lives_in"] == ["Berlin", "Paris"]
    assert "Paris" in {n["entity"]["name"] for n in mem.neighbours(user, user_id="sdk_g")}
    assert mem.path(user, "Paris", user_id="sdk_g")[0]["object"] == "Paris"
    both = mem.search_with_facts("where do I live?", user_id="sdk_g", as_of="2023-01-01")
    assert both["results"] and [f["object"] for f in both["facts"] if f["predicate"] == "lives_in"] == ["Berlin"]
    with pytest.raises(NotFound):
        mem.timeline("Atlantis", user_id="sdk_g")
    with pytest.raises(NotFound):
        mem.retry_job(999_999)


def test_import_chunks_split_a_large_export(rest):
    from api.client import import_chunks

    mem = _client(rest, rest.acme)
    for i in range(7):  # in event order, as a conversation arrives: each links to earlier ones
        mem.add(f"chunked note number {i} about the garden", user_id="sdk_chunks", timestamp=f"2026-03-0{i + 1}")
    text = mem.export(user_id="sdk_chunks")
    chunks = import_chunks(text, max_notes=3)
    assert [c.count("\n") for c in chunks] == [3, 3, 1] and "".join(chunks) == text
    assert '"target"' in chunks[2]  # a link that crosses chunks
    admin = Client(api_key=rest.admin["Authorization"].split(" ", 1)[1], http=rest.client)
    admin.create_tenant("sdk_chunks_copy")
    copy = Client(api_key=admin.create_key("sdk_chunks_copy")["key"], http=rest.client)
    assert sum(copy.import_lines(c) for c in chunks) == 7
    assert copy.export(user_id="sdk_chunks") == text
