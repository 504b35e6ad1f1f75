"""Keys and tenants: 401 without a valid key on every /v1 route, 403 across admin/tenant, and a note
of another tenant is 404 on every route that takes an id (no existence leak)."""
import pytest

from tests.api.rest_support import ADMIN, bearer, rest  # noqa: F401  (fixture)


def _v1_routes(app):
    for path, ops in app.openapi()["paths"].items():
        if path.startswith("/v1/"):
            for method in ops:
                yield method.upper(), path.replace("{note_id}", "x").replace("{tenant_id}", "acme").replace("{key_id}", "k")


def test_every_v1_route_needs_a_key(rest):
    routes = list(_v1_routes(rest.app))
    assert len(routes) >= 15
    for method, path in routes:
        for headers in ({}, bearer("egm_0000_wrong"), {"Authorization": "Basic abc"}, {"X-API-Key": "nonsense"}):
            r = rest.client.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json()["code"] == "unauthorized"


def test_x_api_key_header_works_like_bearer(rest):
    key = rest.acme["Authorization"].split(" ", 1)[1]
    r = rest.client.get("/v1/memories", params={"user_id": "nobody"}, headers={"X-API-Key": key})
    assert r.status_code == 200 and r.json()["results"] == []


def test_admin_and_tenant_keys_do_not_cross(rest):
    r = rest.client.get("/v1/memories", params={"user_id": "u"}, headers=rest.admin)
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    r = rest.client.get("/v1/admin/tenants", headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    assert {t["id"] for t in rest.client.get("/v1/admin/tenants", headers=rest.admin).json()} >= {"acme", "globex"}


def test_another_tenants_note_is_404_everywhere(rest):
    note = rest.client.post("/v1/memories", json={"content": "Acme's secret launch date is May 4", "user_id": "ann"},
                            headers=rest.acme).json()["results"][0]
    nid = note["id"]
    other = rest.globex
    calls = [("GET", f"/v1/memories/{nid}", None), ("PATCH", f"/v1/memories/{nid}", {"content": "mine now"}),
             ("DELETE", f"/v1/memories/{nid}", None), ("GET", f"/v1/memories/{nid}/history", None),
             ("GET", f"/v1/memories/{nid}/links", None), ("POST", "/v1/restore", {"ids": [nid]})]
    for method, path, body in calls:
        r = rest.client.request(method, path, json=body, headers=other)
        ghost = "00000000-0000-0000-0000-000000000000"
        missing = rest.client.request(method, path.replace(nid, ghost), json=body and {
            k: ([ghost] if k == "ids" else v) for k, v in body.items()}, headers=other)
        assert r.status_code == 404 and r.json()["code"] == "not_found", (method, path, r.text)
        # Same answer as for an id that exists nowhere, apart from the id itself.
        assert r.json()["message"].replace(nid, "?") == missing.json()["message"].replace(ghost, "?")
    for path, kwargs in (("/v1/memories", {"params": {"user_id": "ann"}}), ("/v1/export", {"params": {"user_id": "ann"}})):
        r = rest.client.get(path, headers=other, **kwargs)
        assert nid not in r.text
    hits = rest.client.post("/v1/search", json={"query": "secret launch date", "user_id": "ann"}, headers=other).json()
    assert nid not in [h["id"] for h in hits["results"]]
    # ... and the owner still has it, unchanged.
    assert rest.client.get(f"/v1/memories/{nid}", headers=rest.acme).json()["content"] == note["content"]


def test_revoked_key_and_disabled_tenant_are_401(rest):
    made = rest.client.post("/v1/admin/tenants/acme/keys", json={"label": "temp"}, headers=rest.admin).json()
    temp = bearer(made["key"])
    assert rest.client.get("/v1/memories", params={"user_id": "u"}, headers=temp).status_code == 200
    listed = rest.client.get("/v1/admin/tenants/acme/keys", headers=rest.admin).json()
    assert made["id"] in [k["id"] for k in listed] and all("key" not in k for k in listed)
    assert rest.client.delete(f"/v1/admin/keys/{made['id']}", headers=rest.admin).json()["revoked_at"] is not None
    assert rest.client.get("/v1/memories", params={"user_id": "u"}, headers=temp).status_code == 401

    rest.client.post("/v1/admin/tenants", json={"id": "initech"}, headers=rest.admin)
    key = bearer(rest.client.post("/v1/admin/tenants/initech/keys", json={}, headers=rest.admin).json()["key"])
    assert rest.client.post("/v1/admin/tenants/initech/disable", headers=rest.admin).json()["disabled"] is True
    assert rest.client.get("/v1/memories", params={"user_id": "u"}, headers=key).status_code == 401
    rest.client.post("/v1/admin/tenants/initech/enable", headers=rest.admin)
    assert rest.client.get("/v1/memories", params={"user_id": "u"}, headers=key).status_code == 200


def test_admin_errors(rest):
    r = rest.client.post("/v1/admin/tenants", json={"id": "acme"}, headers=rest.admin)
    assert (r.status_code, r.json()["code"]) == (409, "conflict")
    r = rest.client.post("/v1/admin/tenants", json={"id": "Bad Name"}, headers=rest.admin)
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")
    assert rest.client.post("/v1/admin/tenants/nope/keys", json={}, headers=rest.admin).status_code == 404
    assert rest.client.delete("/v1/admin/keys/nope", headers=rest.admin).status_code == 404


def test_keys_are_stored_hashed(rest):
    import sqlite3

    settings = rest.app.state.service.settings
    clear = rest.acme["Authorization"].split(" ", 1)[1]
    secret = clear.split("_", 2)[2]
    con = sqlite3.connect(settings.data_dir / "control.db")
    dump = "\n".join(con.iterdump())
    con.close()
    assert rest.acme_key_id in dump and secret not in dump


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_tenants_live_in_their_own_database(rest, tenant):
    folder = rest.app.state.service.settings.data_dir / "tenants" / tenant
    assert (folder / "engram.db").is_file()
