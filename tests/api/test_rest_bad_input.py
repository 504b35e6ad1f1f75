"""Hand-written bad input against the real app on both backends (a SQLite data dir; PostgreSQL for the
control store and the tenant's schema): each case gets a clear 4xx JSON error or a correct result,
and the notes stored before are all still there, unchanged, afterwards (checked after every test)."""
import json
import uuid

import pytest

from tests.api.rest_support import ADMIN, bearer, start
from tests.helpers import drop_pg_schema, pg_schema_url

SEEDS = ["Ann's allotment is behind the railway station",
         "שלום עולם — Ann's Hebrew tutor is called Dana",          # RTL
         "Ann's cat 🐈‍⬛ is called Luna 🌙",                          # emoji, ZWJ sequence
         "Cafe\u0301 Zoë serves crème brûlée",                      # combining acute accent
         "Ann's SQL note: ' OR 1=1; DROP TABLE notes; -- and 100% of _x_ \"quoted\" NEAR(a b) *"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def app_on(request, tmp_path_factory, embedder):
    """(client, headers, kept notes) on one backend; the tenant's scope ``ann`` holds the SEEDS."""
    tenant, control, overrides = f"bad{uuid.uuid4().hex[:8]}", None, {}
    if request.param == "postgresql":
        control = f"t_ctl_{uuid.uuid4().hex[:10]}"
        overrides["database_url"] = pg_schema_url(control, create=True)
    client, _ = start(tmp_path_factory.mktemp("bad"), embedder, raise_server_exceptions=False, **overrides)
    try:
        with client:
            admin = bearer(ADMIN)
            assert client.post("/v1/admin/tenants", json={"id": tenant}, headers=admin).status_code == 201
            key = bearer(client.post(f"/v1/admin/tenants/{tenant}/keys", json={}, headers=admin).json()["key"])
            kept = [client.post("/v1/memories", json={"content": c, "user_id": "ann", "metadata": {"i": i}},
                                headers=key).json()["results"][0] for i, c in enumerate(SEEDS)]
            yield client, key, kept
    finally:
        if control:
            drop_pg_schema(f"tenant_{tenant}")
            drop_pg_schema(control)


@pytest.fixture()
def api(app_on):
    """The app, and afterwards: every seeded note is still there with its exact content."""
    client, key, kept = app_on
    yield client, key
    listed = client.get("/v1/memories", params={"user_id": "ann", "limit": 50}, headers=key).json()["results"]
    assert {n["id"]: n["content"] for n in listed if n["id"] in {k["id"] for k in kept}} == \
        {k["id"]: k["content"] for k in kept}


def _error(r, status, code=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["message"] and (code is None or body["code"] == code), body
    return body


def test_invalid_json_bodies(api):
    client, key = api
    as_json = {**key, "content-type": "application/json"}
    for raw in (b"{not json", b'{"content": "unterminated', b"", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'"a string"',
                b"null", b'{"content": "x", "user_id": "ann"' + b" " * 10 + b"}}", b"[" * 5000 + b"]" * 5000):
        r = client.post("/v1/memories", content=raw, headers=as_json)
        assert 400 <= r.status_code < 500 and r.json()["code"], (raw[:30], r.status_code, r.text)
    r = client.post("/v1/search", content=b"query=x", headers={**key, "content-type": "application/x-www-form-urlencoded"})
    assert 400 <= r.status_code < 500 and r.json()["code"]
    r = client.post("/v1/search", content=b'{"query": "x", "user_id": "ann", "now": NaN}', headers=as_json)
    _error(r, 400, "invalid_timestamp")


@pytest.mark.parametrize("path,body", [
    ("/v1/memories", {"content": 123, "user_id": "ann"}),
    ("/v1/memories", {"content": "x", "user_id": ["ann"]}),
    ("/v1/memories", {"content": "x", "user_id": "ann", "importance": "high"}),
    ("/v1/memories", {"content": "x", "user_id": "ann", "metadata": "not an object"}),
    ("/v1/memories", {"messages": "hello", "user_id": "ann"}),
    ("/v1/memories", {"messages": [{"role": "robot", "content": "x"}], "user_id": "ann"}),
    ("/v1/memories", {"content": "x", "user_id": "ann", "timestamp": {"y": 2026}}),
    ("/v1/memories", {"content": "x", "user_id": "ann", "unknown_field": 1}),
    ("/v1/search", {"query": ["x"], "user_id": "ann"}),
    ("/v1/search", {"query": "x", "user_id": "ann", "top_k": "many"}),
    ("/v1/search", {"query": "x", "user_id": "ann", "filters": "role=user"}),
    ("/v1/search", {"query": "x", "user_id": "ann", "include_archived": "maybe"}),
    ("/v1/restore", {"ids": "abc"}),
    ("/v1/consolidate", {"user_id": "ann", "threshold": 7}),
])
def test_wrong_types_are_422(api, path, body):
    client, key = api
    _error(client.post(path, json=body, headers=key), 422, "validation_error")


def test_huge_body_over_a_socket_is_413_before_it_is_all_sent(tmp_path, embedder):
    """A real server and a raw socket: the request declares 100 MiB, sends 1 KiB and waits; the 413
    comes back at once, so the server never waited for (or buffered) the rest."""
    import socket

    from tests.api.served_support import serve

    with serve(tmp_path, embedder, None, llm="none") as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST /v1/memories HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Authorization: Bearer egm_x_y\r\nContent-Length: 104857600\r\n\r\n" + b"x" * 1024)
            reply = b""
            while b"}" not in reply:  # the JSON body's end; recv blocks at most the socket timeout
                chunk = s.recv(4096)
                assert chunk, reply
                reply += chunk
    head, _, body = reply.decode().partition("\r\n\r\n")
    assert " 413 " in head.split("\r\n")[0], reply
    assert json.loads(body)["code"] == "payload_too_large"


def test_huge_content_and_batches_are_413_and_store_nothing(api):
    client, key = api
    _error(client.post("/v1/memories", json={"content": "x" * 70_000, "user_id": "big"}, headers=key), 413)
    turns = [{"role": "user", "content": f"turn {i}"} for i in range(21)]  # the test app allows 20
    _error(client.post("/v1/memories", json={"messages": turns, "user_id": "big"}, headers=key), 413, "payload_too_large")
    _error(client.post("/v1/restore", json={"ids": [str(uuid.uuid4()) for _ in range(21)]}, headers=key), 413)
    lines = "\n".join(json.dumps({"content": f"line {i}", "user_id": "big"}) for i in range(21))
    _error(client.post("/v1/import", content=lines, headers={**key, "content-type": "application/x-ndjson"}), 413)
    assert client.get("/v1/memories", params={"user_id": "big"}, headers=key).json()["results"] == []


def test_unicode_round_trips_exactly_and_is_searchable(api, app_on):
    client, key = api
    _, _, kept = app_on
    for note in kept:
        got = client.get(f"/v1/memories/{note['id']}", headers=key).json()
        assert got["content"] == note["content"]
    hits = client.post("/v1/search", json={"query": "Hebrew tutor Dana", "user_id": "ann"}, headers=key).json()
    assert hits["results"][0]["id"] == kept[1]["id"]
    hits = client.post("/v1/search", json={"query": "crème brûlée", "user_id": "ann"}, headers=key).json()
    assert hits["results"][0]["id"] == kept[3]["id"]
    scope = {"user_id": "אנה 🐈‍⬛ e\u0301"}  # RTL, ZWJ emoji, a combining mark in a scope id
    made = client.post("/v1/memories", json={"content": "مرحبا 👋🏽", **scope}, headers=key)
    assert made.status_code == 201
    listed = client.get("/v1/memories", params=scope, headers=key).json()["results"]
    assert [n["content"] for n in listed] == ["مرحبا 👋🏽"]


@pytest.mark.parametrize("raw", [
    b'{"content": "lone high \\ud800 here", "user_id": "ann"}',
    b'{"content": "lone low \\udc00", "user_id": "ann"}',
    b'{"content": "ok", "user_id": "\\udfff"}',
    b'{"content": "ok", "user_id": "ann", "metadata": {"k": "\\ud83d"}}',
    b'{"content": "ok", "user_id": "ann", "metadata": {"\\ud800": 1}}',
])
def test_lone_surrogates_are_422_and_never_stored(api, raw):
    client, key = api
    r = client.post("/v1/memories", content=raw, headers={**key, "content-type": "application/json"})
    _error(r, 422, "validation_error")
    r = client.post("/v1/search", content=raw.replace(b'"content"', b'"query"'),
                    headers={**key, "content-type": "application/json"})
    assert r.status_code == 422
    # A well-formed pair is fine, and a literal backslash-u text is just text.
    ok = client.post("/v1/memories", content='{"content": "pair \\ud83d\\ude00 and \\\\ud800", "user_id": "sur"}'.encode(),
                     headers={**key, "content-type": "application/json"})
    assert ok.status_code == 201 and ok.json()["results"][0]["content"] == "pair 😀 and \\ud800"


def test_null_bytes_are_422_everywhere_on_both_backends(api):
    client, key = api
    as_json = {**key, "content-type": "application/json"}
    calls = [
        ("POST", "/v1/memories", {"content": "a\u0000b", "user_id": "ann"}),
        ("POST", "/v1/memories", {"content": "ok", "user_id": "a\u0000nn"}),
        ("POST", "/v1/memories", {"content": "ok", "user_id": "ann", "metadata": {"k\u0000": "v"}}),
        ("POST", "/v1/search", {"query": "allot\u0000ment", "user_id": "ann"}),
        ("POST", "/v1/search", {"query": "x", "user_id": "ann", "filters": {"city": "Pa\u0000ris"}}),
        ("POST", "/v1/consolidate", {"user_id": "ann\u0000"}),
        ("POST", "/v1/restore", {"ids": ["id\u0000"]}),
    ]
    for method, path, body in calls:
        _error(client.request(method, path, json=body, headers=key), 422, "validation_error")
    for path, params in (("/v1/memories", {"user_id": "a\x00"}), ("/v1/export", {"user_id": "a\x00"}),
                         ("/v1/graph/entities", {"user_id": "a\x00"}), ("/v1/graph/facts", {"agent_id": "\x00"}),
                         ("/v1/graph/path", {"a": "x\x00", "b": "y", "user_id": "ann"})):
        _error(client.get(path, params=params, headers=key), 422, "validation_error")
    # A filter is evaluated in Python, never sent to SQL: an escaped NUL in its JSON simply matches nothing.
    r = client.get("/v1/memories", params={"user_id": "ann", "filters": json.dumps({"i": "\x00"})}, headers=key)
    assert r.status_code == 200 and r.json()["results"] == []
    for path in ("/v1/memories/abc%00def", "/v1/graph/entities/Ann%00?user_id=ann", "/v1/memories/%00/history"):
        _error(client.get(path, headers=key), 422, "validation_error")
    line = json.dumps({"content": "imported\u0000", "user_id": "ann"})
    _error(client.post("/v1/import", content=line, headers={**key, "content-type": "application/x-ndjson"}), 422)
    raw = b'{"content": "raw \x00 byte", "user_id": "ann"}'
    assert 400 <= client.post("/v1/memories", content=raw, headers=as_json).status_code < 500


def test_sql_and_fts_metacharacters_are_plain_text(api, app_on):
    client, key = api
    _, _, kept = app_on
    for query in ("' OR 1=1; DROP TABLE notes; --", '"quoted" NEAR(a b) *', "100% of _x_", "AND OR NOT ( ) ^ : -",
                  "\\", "'", '"', "%", "*", "_", "?", "${x}", "{{x}}", "<script>alert(1)</script>", ";"):
        r = client.post("/v1/search", json={"query": query, "user_id": "ann"}, headers=key)
        assert r.status_code == 200, (query, r.text)
    hits = client.post("/v1/search", json={"query": "DROP TABLE notes", "user_id": "ann"}, headers=key).json()
    assert hits["results"][0]["id"] == kept[4]["id"]
    for value in ("' OR '1'='1", "%", "_", "*", "\\"):  # equality is equality: no wildcard, no injection
        r = client.post("/v1/search", json={"query": "Ann", "user_id": "ann", "filters": {"i": value}}, headers=key)
        assert r.status_code == 200 and r.json()["results"] == []
        listed = client.get("/v1/memories", params={"user_id": "ann", "filters": json.dumps({"i": value})}, headers=key)
        assert listed.status_code == 200 and listed.json()["results"] == []
    r = client.post("/v1/search", json={"query": "Ann", "user_id": "ann", "filters": {"content": {"contains": "100%"}}},
                    headers=key)
    assert [h["id"] for h in r.json()["results"]] == [kept[4]["id"]]
    for scope in ("' OR 1=1 --", "%", "*"):  # a scope id is compared, never pattern-matched
        assert client.get("/v1/memories", params={"user_id": scope}, headers=key).json()["results"] == []


@pytest.mark.parametrize("filters", [
    {"i": {"regex": ".*"}}, {"i": {"$gt": 1}}, {"i": {"eq": 1, "like": "%"}}, {"i": {"EQ": 1}},
    {"i": {}}, {}, {"AND": []}, {"AND": "x"}, {"tags": {"in": "abc"}}, {"event_time": {"gt": "not a time"}},
    {"content": {"contains": {"a": 1}}},
])
def test_unknown_or_malformed_filter_operators_are_400(api, filters):
    client, key = api
    r = client.post("/v1/search", json={"query": "Ann", "user_id": "ann", "filters": filters}, headers=key)
    _error(r, 400, "invalid_filter")
    r = client.get("/v1/memories", params={"user_id": "ann", "filters": json.dumps(filters)}, headers=key)
    _error(r, 400, "invalid_filter")


def test_deeply_nested_filter_is_400_not_a_crash(api):
    client, key = api
    deep: dict = {"i": 1}
    for _ in range(500):
        deep = {"NOT": deep}
    _error(client.post("/v1/search", json={"query": "Ann", "user_id": "ann", "filters": deep}, headers=key),
           400, "invalid_filter")
    _error(client.get("/v1/memories", params={"user_id": "ann", "filters": "[1"}, headers=key), 422)


@pytest.mark.parametrize("top_k", [0, -1, -(2**63), 51, 10**6, 2**63, 10**30])
def test_top_k_zero_negative_huge_is_422(api, top_k):
    client, key = api
    _error(client.post("/v1/search", json={"query": "Ann", "user_id": "ann", "top_k": top_k}, headers=key),
           422, "validation_error")
    _error(client.get("/v1/memories", params={"user_id": "ann", "limit": top_k}, headers=key), 422)
    _error(client.get("/v1/jobs", params={"limit": top_k}, headers=key), 422)


def test_chat_top_k_and_max_tokens_out_of_range_are_4xx(api):
    client, key = api
    for top_k in (0, -1, 51, 10**30):
        r = client.post("/v1/chat", json={"message": "hi", "user_id": "ann", "top_k": top_k}, headers=key)
        _error(r, 422, "validation_error")
    for max_tokens in (0, -5):
        _error(client.post("/v1/chat", json={"message": "hi", "user_id": "ann", "max_tokens": max_tokens},
                           headers=key), 422, "validation_error")
        body = {"messages": [{"role": "user", "content": "hi"}], "user": "ann", "max_tokens": max_tokens}
        _error(client.post("/v1/chat/completions", json=body, headers=key), 422, "validation_error")


def test_top_k_edges_that_are_valid(api, app_on):
    client, key = api
    _, _, kept = app_on
    one = client.post("/v1/search", json={"query": "allotment", "user_id": "ann", "top_k": 1}, headers=key).json()
    assert [h["id"] for h in one["results"]] == [kept[0]["id"]]
    most = client.post("/v1/search", json={"query": "Ann", "user_id": "ann", "top_k": 50}, headers=key).json()
    assert {h["id"] for h in most["results"]} >= {k["id"] for k in kept}


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/memories?user_id=ann&offset=-1"), ("GET", "/v1/memories?user_id=ann&offset=99999999999999999999"),
    ("POST", "/v1/jobs/99999999999999999999/retry"), ("POST", "/v1/jobs/2147483648/retry"),
    ("POST", "/v1/jobs/-1/retry"), ("POST", "/v1/jobs/abc/retry"),
    ("GET", "/v1/graph/entities/x/neighbours?user_id=ann&depth=99"),
])
def test_out_of_range_integers_are_4xx(api, method, path):
    client, key = api
    r = client.request(method, path, headers=key)
    assert 400 <= r.status_code < 500 and r.json()["code"], (path, r.status_code, r.text)


def test_overlong_ids_are_4xx(api):
    client, key = api
    r = client.post("/v1/memories", json={"content": "x", "user_id": "u" * 300}, headers=key)
    _error(r, 400)
    assert client.get("/v1/memories/" + "x" * 5000, headers=key).status_code in (400, 404)
    assert client.get("/v1/graph/entities/" + "x" * 5000, params={"user_id": "ann"}, headers=key).status_code == 404


def test_a_database_error_answers_503_without_the_sql(tmp_path, embedder):
    from memory.errors import StorageError

    client, app = start(tmp_path, embedder, raise_server_exceptions=False)

    def failing() -> None:
        raise StorageError("database error: DataError: [SQL: SELECT notes.content FROM notes] [parameters: ('ann',)]")

    app.add_api_route("/failing", failing)
    with client:
        r = client.get("/failing")
    assert (r.status_code, r.json()["code"]) == (503, "storage_error")
    assert "SELECT" not in r.text and "ann" not in r.text and "rolled back" in r.json()["message"]
