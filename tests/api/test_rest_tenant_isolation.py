"""Cross-tenant attempts on every route: acme owns notes, graph facts, jobs and a secret; globex, with
its own valid key, tries every route of the app on acme's ids and scope. Each attempt fails (404,
403) or answers from globex's own, empty tenant; acme's data is unchanged afterwards. The routes
are read from the app itself: a new route without a case here fails the test."""
import json
import time

import pytest

from tests.api.chat_support import engine, make_tenants, start_chat  # noqa: F401  (fixture)
from tests.api.rest_support import ADMIN, bearer

SECRET = "PELICAN-42"
LINES = [("I live in Berlin.", "2022-03-01T10:00:00Z"), ("My sister Emma works at Siemens.", "2022-04-01T10:00:00Z"),
         (f"Acme's launch code is {SECRET}.", "2022-05-01T10:00:00Z")]
# Routes with no key and no tenant data: each is checked below to leak nothing of acme's.
PUBLIC = {"GET /healthz", "GET /readyz", "GET /metrics", "GET /", "GET /openapi.json", "GET /docs",
          "GET /docs/oauth2-redirect", "GET /redoc"}


def app_routes(routes, prefix=""):
    """Every (method, path) the app serves, through included routers."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from app_routes(inner.routes, prefix + route.include_context.prefix)
            continue
        for method in sorted((getattr(route, "methods", None) or set()) - {"HEAD"}):
            yield f"{method} {prefix}{route.path}"


@pytest.fixture(scope="module")
def world(tmp_path_factory, embedder, engine):  # noqa: F811
    client, app = start_chat(tmp_path_factory.mktemp("iso"), embedder, engine, job_workers=1, chat_max_tokens=16)
    with client:
        keys = make_tenants(client)
        acme, globex = bearer(keys["acme"]), bearer(keys["globex"])
        notes = [client.post("/v1/memories", json={"content": text, "user_id": "ann", "timestamp": when},
                             headers=acme).json()["results"][0] for text, when in LINES]
        deadline = time.monotonic() + 90
        while not _all_done(jobs := client.get("/v1/jobs", headers=acme).json()):
            assert time.monotonic() < deadline, jobs
            time.sleep(0.2)
        entities = client.get("/v1/graph/entities", params={"user_id": "ann"}, headers=acme).json()
        assert {"Berlin", "Emma"} <= {e["name"] for e in entities}
        yield {"client": client, "app": app, "acme": acme, "globex": globex, "notes": notes, "jobs": jobs,
               "entities": entities, "keys": keys}


def _all_done(jobs):
    return bool(jobs) and all(j["state"] in ("done", "failed") for j in jobs)


def _acme_marks(w):
    """Strings that must never appear in an answer to globex: acme's ids, contents, entity ids, key."""
    marks = [SECRET, w["keys"]["acme"]] + [n["id"] for n in w["notes"]] + [n["content"] for n in w["notes"]]
    return marks + [e["id"] for e in w["entities"]]


def _no_leak(w, r):
    asked = str(r.request.url) + r.request.content.decode()  # an id globex sent may be echoed in the error
    leaked = [m for m in _acme_marks(w) if m in r.text and m not in asked]
    assert not leaked, (r.request.method, r.request.url, leaked)


def _missing(w, r):
    assert r.status_code == 404 and r.json()["code"] == "not_found", (r.request.url, r.text)
    _no_leak(w, r)


def _empty_or_missing(w, r):
    assert r.status_code in (200, 404), r.text
    if r.status_code == 200:
        assert r.json() == []
    _no_leak(w, r)


def _forbidden(w, r):
    assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    _no_leak(w, r)


def _as_globex(w, method, path, **kw):
    return w["client"].request(method, path, headers={**w["globex"], **kw.pop("headers", {})}, **kw)


def _note(w):
    return w["notes"][0]["id"]


def _entity(w):
    return next(e for e in w["entities"] if e["name"] == "Emma")["id"]


def _chat(w):
    r = _as_globex(w, "POST", "/v1/chat", json={"user_id": "ann", "message": "What is Acme's launch code?"})
    assert r.status_code == 200, r.text
    _no_leak(w, r)  # its memories come from globex's own "ann" (its earlier chats), never acme's


def _completions(w):
    body = {"model": "engram", "user": "ann", "messages": [{"role": "user", "content": "Where do I live?"}]}
    r = _as_globex(w, "POST", "/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    _no_leak(w, r)


def _import(w):
    fields = ("id", "user_id", "keywords", "tags", "context", "metadata", "created_at", "event_time",
              "last_recalled_at", "recall_count", "strength", "importance", "archived")
    record = {**{k: w["notes"][0][k] for k in fields}, "content": "globex's own words", "links": []}
    r = _as_globex(w, "POST", "/v1/import", content=json.dumps(record), headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 201, r.text
    # It went into globex's own database (acme's note is checked unchanged after every case); then
    # globex deletes its copy, so the id again names only acme's note for the other cases.
    assert _as_globex(w, "GET", f"/v1/memories/{_note(w)}").json()["content"] == "globex's own words"
    assert _as_globex(w, "DELETE", f"/v1/memories/{_note(w)}").status_code == 204


def _retry(w):
    for job in w["jobs"]:  # globex has no job of acme's: 404, or 400 for a job of its own with that id
        r = _as_globex(w, "POST", f"/v1/jobs/{job['id']}/retry")
        assert r.status_code in (400, 404), r.text
        _no_leak(w, r)


ADMIN_PATHS = {"GET /v1/admin/tenants", "POST /v1/admin/tenants", "GET /v1/admin/tenants/{tenant_id}",
               "POST /v1/admin/tenants/{tenant_id}/disable", "POST /v1/admin/tenants/{tenant_id}/enable",
               "POST /v1/admin/tenants/{tenant_id}/keys", "GET /v1/admin/tenants/{tenant_id}/keys",
               "DELETE /v1/admin/keys/{key_id}"}

CASES = {
    "POST /v1/memories": lambda w: _as_globex(w, "POST", "/v1/memories", json={"content": "globex note", "user_id": "ann"}),
    "GET /v1/memories": lambda w: _no_leak(w, _as_globex(w, "GET", "/v1/memories", params={"user_id": "ann"})),
    "GET /v1/memories/{note_id}": lambda w: _missing(w, _as_globex(w, "GET", f"/v1/memories/{_note(w)}")),
    "PATCH /v1/memories/{note_id}": lambda w: _missing(w, _as_globex(w, "PATCH", f"/v1/memories/{_note(w)}",
                                                                    json={"content": "taken over"})),
    "DELETE /v1/memories/{note_id}": lambda w: _missing(w, _as_globex(w, "DELETE", f"/v1/memories/{_note(w)}")),
    "GET /v1/memories/{note_id}/history": lambda w: _missing(w, _as_globex(w, "GET", f"/v1/memories/{_note(w)}/history")),
    "GET /v1/memories/{note_id}/links": lambda w: _missing(w, _as_globex(w, "GET", f"/v1/memories/{_note(w)}/links")),
    "POST /v1/search": lambda w: _no_leak(w, _as_globex(w, "POST", "/v1/search", json={"query": "launch code Berlin",
                                                                                       "user_id": "ann"})),
    "POST /v1/consolidate": lambda w: _no_leak(w, _as_globex(w, "POST", "/v1/consolidate", json={
        "user_id": "ann", "now": "2100-01-01T00:00:00Z", "threshold": 1.0})),
    "POST /v1/restore": lambda w: _missing(w, _as_globex(w, "POST", "/v1/restore", json={"ids": [_note(w)]})),
    "GET /v1/graph/entities": lambda w: _empty_or_missing(w, _as_globex(w, "GET", "/v1/graph/entities",
                                                                        params={"user_id": "ann"})),
    "GET /v1/graph/entities/{entity}": lambda w: _missing(w, _as_globex(w, "GET", f"/v1/graph/entities/{_entity(w)}",
                                                                        params={"user_id": "ann"})),
    "GET /v1/graph/entities/{entity}/timeline": lambda w: _empty_or_missing(w, _as_globex(
        w, "GET", f"/v1/graph/entities/{_entity(w)}/timeline", params={"user_id": "ann"})),
    "GET /v1/graph/entities/{entity}/neighbours": lambda w: _empty_or_missing(w, _as_globex(
        w, "GET", f"/v1/graph/entities/{_entity(w)}/neighbours", params={"user_id": "ann"})),
    "GET /v1/graph/facts": lambda w: _empty_or_missing(w, _as_globex(w, "GET", "/v1/graph/facts",
                                                                     params={"user_id": "ann", "entity": "Emma"})),
    "GET /v1/graph/path": lambda w: _empty_or_missing(w, _as_globex(w, "GET", "/v1/graph/path",
                                                                    params={"a": "Emma", "b": "Siemens", "user_id": "ann"})),
    "GET /v1/jobs": lambda w: _no_leak(w, _as_globex(w, "GET", "/v1/jobs")),
    "POST /v1/jobs/{job_id}/retry": _retry,
    "GET /v1/export": lambda w: _no_leak(w, _as_globex(w, "GET", "/v1/export", params={"user_id": "ann"})),
    "POST /v1/import": _import,
    "POST /v1/chat": _chat,
    "POST /v1/chat/completions": _completions,
    **{route: (lambda route: lambda w: _forbidden(w, _as_globex(
        w, route.split()[0], route.split()[1].format(tenant_id="acme", key_id="x"), json={"id": "evil", "label": "x"})))(route)
       for route in ADMIN_PATHS},
}


def test_every_route_is_covered(world):
    served = set(app_routes(world["app"].routes))
    assert len(served) >= 35
    assert served - set(CASES) - PUBLIC == set(), "routes without a cross-tenant case"
    assert set(CASES) | PUBLIC <= served, "cases for routes the app no longer has"


@pytest.mark.parametrize("route", sorted(CASES))
def test_other_tenant_cannot_reach_acme(world, route):
    CASES[route](world)
    _acme_is_intact(world)


@pytest.mark.parametrize("route", sorted(PUBLIC))
def test_public_routes_leak_nothing(world, route):
    r = world["client"].get(route.split()[1])
    assert r.status_code == 200
    _no_leak(world, r)
    if route in ("GET /metrics", "GET /healthz", "GET /readyz"):
        assert "acme" not in r.text  # not even the tenant's name


def _acme_is_intact(w):
    c, acme = w["client"], w["acme"]
    for note in w["notes"]:
        got = c.get(f"/v1/memories/{note['id']}", headers=acme).json()
        assert (got["content"], got["archived"]) == (note["content"], False)
    listed = c.get("/v1/memories", params={"user_id": "ann"}, headers=acme).json()["results"]
    assert [n["id"] for n in listed] == [n["id"] for n in w["notes"]]
    jobs = c.get("/v1/jobs", headers=acme).json()
    assert [(j["id"], j["state"], j["attempts"]) for j in jobs] == [(j["id"], j["state"], j["attempts"]) for j in w["jobs"]]
    assert {t["id"] for t in c.get("/v1/admin/tenants", headers=bearer(ADMIN)).json()} == {"acme", "globex"}
