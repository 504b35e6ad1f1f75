"""/v1/graph and /v1/jobs on the real app: notes go in over HTTP, the durable job queue extracts
facts in the background (rule extractor, real MiniLM), the graph answers over HTTP."""
import time

import pytest

from tests.api.rest_support import rest  # noqa: F401  (fixture)

LINES = [("I live in Berlin.", "2022-03-01T10:00:00Z"), ("My sister Emma works at Siemens.", "2022-04-01T10:00:00Z"),
         ("We moved to Paris last June.", "2024-02-10T10:00:00Z")]


def _wait_for_jobs(rest, headers, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = rest.client.get("/v1/jobs", headers=headers).json()
        if jobs and all(j["state"] in ("done", "failed") for j in jobs):
            return jobs
        time.sleep(0.2)
    raise AssertionError(f"jobs still pending: {jobs}")


@pytest.fixture(scope="module")
def graph_notes(rest):
    ids = []
    for text, when in LINES:
        r = rest.client.post("/v1/memories", json={"content": text, "user_id": "g_ann", "timestamp": when},
                             headers=rest.acme)
        ids.append(r.json()["results"][0]["id"])
    jobs = _wait_for_jobs(rest, rest.acme)
    assert {j["state"] for j in jobs} == {"done"} and {j["note_id"] for j in jobs} == set(ids)
    return ids


def _get(rest, path, **params):
    r = rest.client.get(path, params={"user_id": "g_ann", **params}, headers=rest.acme)
    assert r.status_code == 200, r.text
    return r.json()


def test_entities_and_facts_now_and_as_of(rest, graph_notes):
    names = {e["name"] for e in _get(rest, "/v1/graph/entities")}
    assert {"Berlin", "Paris", "Emma", "Siemens"} <= names
    places = _get(rest, "/v1/graph/entities", type="place")
    assert {"Berlin", "Paris"} <= {e["name"] for e in places} and all(e["type"] == "place" for e in places)
    lives = _get(rest, "/v1/graph/facts", predicate="lives_in")
    assert [f["object"] for f in lives] == ["Paris"] and "previously Berlin" in lives[0]["rendered"]
    then = _get(rest, "/v1/graph/facts", predicate="lives_in", as_of="2023-01-01T00:00:00Z")
    assert [f["object"] for f in then] == ["Berlin"]
    every = _get(rest, "/v1/graph/facts", predicate="lives_in", include_expired="true")
    assert {f["object"] for f in every} == {"Berlin", "Paris"}


def test_timeline_neighbours_and_path(rest, graph_notes):
    user_id = _get(rest, "/v1/graph/facts", predicate="lives_in")[0]["subject_id"]
    timeline = _get(rest, f"/v1/graph/entities/{user_id}/timeline")
    lives = [f for f in timeline if f["predicate"] == "lives_in"]
    assert [f["object"] for f in lives] == ["Berlin", "Paris"] and [f["current"] for f in lives] == [False, True]
    emma = _get(rest, "/v1/graph/entities/emma")
    assert emma["name"] == "Emma"
    near = _get(rest, "/v1/graph/entities/Emma/neighbours")
    assert "Siemens" in {n["entity"]["name"] for n in near} and all(n["distance"] == 1 for n in near)
    path = _get(rest, "/v1/graph/path", a="Siemens", b="Paris")
    assert path and path[0]["subject"] in ("Emma", "Siemens") and path[-1]["object"] == "Paris"
    r = rest.client.get("/v1/graph/entities/Nobody/timeline", params={"user_id": "g_ann"}, headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = rest.client.get("/v1/graph/entities/Emma/neighbours", params={"user_id": "g_ann", "depth": 9}, headers=rest.acme)
    assert r.status_code == 422


def test_search_returns_facts_with_as_of(rest, graph_notes):
    body = {"query": "Where do I live?", "user_id": "g_ann", "top_k": 3}
    now = rest.client.post("/v1/search", json=body, headers=rest.acme).json()
    lives_now = [f for f in now["facts"] if f["predicate"] == "lives_in"]
    assert lives_now[0]["object"] == "Paris" and lives_now[0]["note_ids"] == [graph_notes[2]]
    then = rest.client.post("/v1/search", json={**body, "as_of": "2023-01-01"}, headers=rest.acme).json()
    assert [f["object"] for f in then["facts"] if f["predicate"] == "lives_in"] == ["Berlin"]
    without = rest.client.post("/v1/search", json={**body, "include_facts": False}, headers=rest.acme).json()
    assert without["facts"] == [] and without["results"]


def test_graph_and_jobs_of_another_tenant_are_invisible(rest, graph_notes):
    emma = _get(rest, "/v1/graph/entities/Emma")
    job_id = rest.client.get("/v1/jobs", headers=rest.acme).json()[0]["id"]
    for path in (f"/v1/graph/entities/{emma['id']}", f"/v1/graph/entities/{emma['id']}/timeline",
                 f"/v1/graph/entities/{emma['id']}/neighbours"):
        r = rest.client.get(path, params={"user_id": "g_ann"}, headers=rest.globex)
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), path
    assert rest.client.get("/v1/graph/facts", params={"user_id": "g_ann"}, headers=rest.globex).json() == []
    assert rest.client.get("/v1/graph/entities", params={"user_id": "g_ann"}, headers=rest.globex).json() == []
    assert rest.client.get("/v1/jobs", headers=rest.globex).json() == []
    r = rest.client.post(f"/v1/jobs/{job_id}/retry", headers=rest.globex)
    assert (r.status_code, r.json()["code"]) == (404, "not_found")


def test_jobs_listing_retry_rules_and_metrics(rest, graph_notes):
    done = rest.client.get("/v1/jobs", params={"state": "done", "limit": 2}, headers=rest.acme).json()
    assert len(done) == 2 and all(j["kind"] == "graph" and j["result"] is not None for j in done)
    r = rest.client.post(f"/v1/jobs/{done[0]['id']}/retry", headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (400, "invalid_input")  # only failed jobs are retried
    assert rest.client.get("/v1/jobs", params={"state": "lost"}, headers=rest.acme).status_code == 422
    metrics = rest.client.get("/metrics").text
    assert "engram_jobs_done 3.0" in metrics and "engram_jobs_failed 0.0" in metrics
    assert "engram_jobs_queued 0.0" in metrics
