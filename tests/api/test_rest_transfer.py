"""/v1/export and /v1/import: a scope round-trips byte for byte (ids, times, strength, links, archived)."""
import json

from tests.api.rest_support import bearer, rest  # noqa: F401  (fixture)

TURNS = ["I moved to Lisbon in May and love the trams", "The trams in Lisbon are yellow and old",
         "My sister Carla visits Lisbon in July", "I started learning Portuguese on Tuesdays",
         "Portuguese verbs are hard but fun"]


def _fresh_tenant(rest, name):
    rest.client.post("/v1/admin/tenants", json={"id": name}, headers=rest.admin)
    return bearer(rest.client.post(f"/v1/admin/tenants/{name}/keys", json={}, headers=rest.admin).json()["key"])


def test_export_import_round_trip_is_equal(rest):
    for i, text in enumerate(TURNS):
        rest.client.post("/v1/memories", json={"content": text, "user_id": "u_io", "metadata": {"i": i},
                                               "timestamp": f"2026-0{i + 1}-01T12:00:00Z"}, headers=rest.acme)
    # Give the state some history: a recall, an archived note.
    rest.client.post("/v1/search", json={"query": "trams", "user_id": "u_io", "top_k": 2}, headers=rest.acme)
    first = rest.client.get("/v1/memories", params={"user_id": "u_io", "limit": 1}, headers=rest.acme).json()
    rest.client.post("/v1/consolidate", json={"user_id": "u_io", "threshold": 1.0, "now": "2030-01-01"}, headers=rest.acme)
    rest.client.post("/v1/restore", json={"ids": [first["results"][0]["id"]]}, headers=rest.acme)

    exported = rest.client.get("/v1/export", params={"user_id": "u_io"}, headers=rest.acme)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in exported.text.splitlines()]
    assert len(records) == 5 and sum(r["archived"] for r in records) == 4
    assert any(r["links"] for r in records) and any(r["recall_count"] for r in records)

    copy = _fresh_tenant(rest, "copy_io")
    r = rest.client.post("/v1/import", content=exported.text, headers={**copy, "content-type": "application/x-ndjson"})
    assert r.status_code == 201 and r.json() == {"imported": 5}
    again = rest.client.get("/v1/export", params={"user_id": "u_io"}, headers=copy)
    assert again.text == exported.text
    # The imported notes are searchable (re-embedded and indexed), archived ones only on request.
    hits = rest.client.post("/v1/search", json={"query": "yellow trams", "user_id": "u_io", "include_archived": True},
                            headers=copy).json()["results"]
    assert any("yellow" in h["content"] for h in hits[:3])


def test_import_into_the_same_tenant_is_409_and_writes_nothing(rest):
    rest.client.post("/v1/memories", json={"content": "a note to clash", "user_id": "u_clash"}, headers=rest.acme)
    text = rest.client.get("/v1/export", params={"user_id": "u_clash"}, headers=rest.acme).text
    extra = json.loads(text.splitlines()[0])
    extra["id"] = "11111111-1111-1111-1111-111111111111"
    r = rest.client.post("/v1/import", content=text + json.dumps(extra) + "\n", headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (409, "conflict")
    assert rest.client.get(f"/v1/memories/{extra['id']}", headers=rest.acme).status_code == 404


def test_a_bad_line_rejects_the_whole_import(rest):
    dest = _fresh_tenant(rest, "bad_io")
    good = {"id": "22222222-2222-2222-2222-222222222222", "user_id": "u", "content": "fine", "created_at": "2026-01-01",
            "event_time": "2026-01-01", "strength": 30.0}
    for bad in ({**good, "id": "33333333-3333-3333-3333-333333333333", "content": ""},
                {**good, "id": "33333333-3333-3333-3333-333333333333", "strength": -1},
                "not json"):
        line = bad if isinstance(bad, str) else json.dumps(bad)
        r = rest.client.post("/v1/import", content=json.dumps(good) + "\n" + line + "\n", headers=dest)
        assert r.status_code == 400 and r.json()["message"].startswith("line 2"), r.text
    assert rest.client.get("/v1/export", params={"user_id": "u"}, headers=dest).text == ""
