"""/v1/memories, /v1/search, /v1/consolidate, /v1/restore against the real app (real SQLite, FAISS, MiniLM)."""
import json

import pytest

from tests.api.rest_support import rest  # noqa: F401  (fixture)


def _add(rest, headers, **body):
    r = rest.client.post("/v1/memories", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["results"]


def test_add_one_note_and_a_batch_of_messages(rest):
    [note] = _add(rest, rest.acme, content="I moved to Lisbon in May", user_id="u_add",
                  timestamp="2026-05-03T10:00:00Z", metadata={"source": "chat"}, importance=0.8)
    assert note["content"] == "I moved to Lisbon in May" and note["user_id"] == "u_add"
    assert note["event_time"].startswith("2026-05-03T10:00:00") and note["importance"] == 0.8
    turns = _add(rest, rest.acme, user_id="u_add", session_id="s1", messages=[
        {"role": "user", "content": "My cat Luna hates the rain."},
        {"role": "assistant", "content": "Poor Luna, maybe a raincoat?", "timestamp": "2026-05-04T09:00:00Z"}])
    assert [t["metadata"]["role"] for t in turns] == ["user", "assistant"]
    assert turns[1]["event_time"].startswith("2026-05-04T09:00:00")


def test_add_needs_exactly_one_of_content_and_messages(rest):
    for body in ({"user_id": "u"}, {"user_id": "u", "content": "a", "messages": [{"content": "b"}]}):
        r = rest.client.post("/v1/memories", json=body, headers=rest.acme)
        assert r.status_code == 422 and r.json()["code"] == "validation_error"


def test_engine_errors_keep_their_codes(rest):
    r = rest.client.post("/v1/memories", json={"content": "no scope"}, headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (400, "scope_required")
    r = rest.client.post("/v1/memories", json={"content": "   ", "user_id": "u"}, headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (400, "empty_content")
    r = rest.client.post("/v1/memories", json={"content": "x", "user_id": "u", "timestamp": "soon"}, headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (400, "invalid_timestamp")


def test_list_paginates_and_filters(rest):
    for i in range(5):
        _add(rest, rest.acme, content=f"page note number {i}", user_id="u_page",
             timestamp=f"2026-02-0{i + 1}T00:00:00Z", metadata={"n": i})
    got, offset = [], 0
    while offset is not None:
        page = rest.client.get("/v1/memories", params={"user_id": "u_page", "limit": 2, "offset": offset},
                               headers=rest.acme).json()
        got += [n["metadata"]["n"] for n in page["results"]]
        offset = page["next_offset"]
    assert got == [0, 1, 2, 3, 4]
    flt = json.dumps({"n": {"gte": 2}})
    page = rest.client.get("/v1/memories", params={"user_id": "u_page", "filters": flt, "limit": 2, "offset": 1},
                           headers=rest.acme).json()
    assert [n["metadata"]["n"] for n in page["results"]] == [3, 4] and page["next_offset"] is None
    r = rest.client.get("/v1/memories", params={"user_id": "u_page", "filters": "{nope"}, headers=rest.acme)
    assert r.status_code == 422


def test_get_update_history_links_delete(rest):
    [a] = _add(rest, rest.acme, content="Ann plays the cello in an orchestra", user_id="u_crud")
    [b] = _add(rest, rest.acme, content="Ann practises the cello every evening", user_id="u_crud")
    got = rest.client.get(f"/v1/memories/{b['id']}", headers=rest.acme).json()
    assert got["content"] == b["content"] and got["recall_count"] == 1
    links = rest.client.get(f"/v1/memories/{b['id']}/links", headers=rest.acme).json()
    assert any(lk["target"] == a["id"] for lk in links)
    r = rest.client.patch(f"/v1/memories/{a['id']}", json={"content": "Ann plays the viola now"}, headers=rest.acme)
    assert r.status_code == 200 and r.json()["content"] == "Ann plays the viola now"
    assert rest.client.delete(f"/v1/memories/{a['id']}", headers=rest.acme).status_code == 204
    assert rest.client.get(f"/v1/memories/{a['id']}", headers=rest.acme).status_code == 404
    history = rest.client.get(f"/v1/memories/{a['id']}/history", headers=rest.acme).json()
    assert [h["action"] for h in history] == ["add", "update", "delete"]
    assert history[1]["old"]["content"] == "Ann plays the cello in an orchestra"


def test_search_with_explain_filters_and_now(rest):
    _add(rest, rest.acme, content="We adopted a beagle called Rex", user_id="u_search", metadata={"kind": "pet"})
    _add(rest, rest.acme, content="The quarterly report is due Friday", user_id="u_search", metadata={"kind": "work"})
    r = rest.client.post("/v1/search", json={"query": "what dog do we have", "user_id": "u_search", "top_k": 2,
                                             "explain": True, "now": "2026-12-01T00:00:00Z"}, headers=rest.acme)
    hits = r.json()["results"]
    assert "beagle" in hits[0]["content"] and hits[0]["dense"] is not None and hits[0]["retention"] <= 1.0
    plain = rest.client.post("/v1/search", json={"query": "dog", "user_id": "u_search"}, headers=rest.acme).json()
    assert "dense" not in plain["results"][0] or plain["results"][0]["dense"] is None
    flt = {"query": "dog", "user_id": "u_search", "filters": {"kind": {"eq": "work"}}}
    only = rest.client.post("/v1/search", json=flt, headers=rest.acme).json()["results"]
    assert [h["metadata"]["kind"] for h in only] == ["work"]
    bad = rest.client.post("/v1/search", json={**flt, "filters": {"kind": {"near": 1}}}, headers=rest.acme)
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_filter")


def test_search_explains_the_speaker_factor(rest):
    _add(rest, rest.acme, user_id="u_speaker", messages=[
        {"role": "user", "content": "I ride a used Trek road bike to work."},
        {"role": "assistant", "content": "A road bike for commuting wants fenders, lights and a rack."}])
    body = {"query": "What road bike do I ride?", "user_id": "u_speaker", "top_k": 2, "explain": True}
    hits = rest.client.post("/v1/search", json=body, headers=rest.acme).json()["results"]
    factors = {h["metadata"]["role"]: h["speaker_factor"] for h in hits}
    assert factors["user"] == 1.0 and factors["assistant"] == pytest.approx(1 / 1.3)
    assert hits[0]["metadata"]["role"] == "user"
    plain = rest.client.post("/v1/search", json={**body, "explain": False}, headers=rest.acme).json()["results"]
    assert all(h.get("speaker_factor") is None for h in plain)


def test_consolidate_then_restore(rest):
    [old] = _add(rest, rest.acme, content="Parked on level 3 of the garage", user_id="u_forget",
                 timestamp="2020-01-01T00:00:00Z", importance=0.0)
    r = rest.client.post("/v1/consolidate", json={"user_id": "u_forget", "now": "2027-01-01"}, headers=rest.acme)
    assert r.status_code == 200 and old["id"] in r.json()["ids"]
    listed = rest.client.get("/v1/memories", params={"user_id": "u_forget"}, headers=rest.acme).json()["results"]
    assert old["id"] not in [n["id"] for n in listed]
    r = rest.client.post("/v1/restore", json={"ids": [old["id"]]}, headers=rest.acme)
    assert r.json()["ids"] == [old["id"]]
    assert rest.client.get(f"/v1/memories/{old['id']}", headers=rest.acme).json()["archived"] is False
