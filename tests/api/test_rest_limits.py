"""Limits and error bodies: body size (declared and streamed), batch size, top_k/limit range,
validation errors and unexpected errors all answer JSON {code, message}."""
from tests.api.rest_support import rest  # noqa: F401  (fixture)


def test_huge_body_is_413_before_the_route_runs(rest):
    big = "x" * (70 * 1024)  # the test app's limit is 64 KiB
    r = rest.client.post("/v1/memories", json={"content": big, "user_id": "u_big"}, headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (413, "payload_too_large")

    def chunks():  # no Content-Length: the limit must count streamed bytes
        for _ in range(20):
            yield b"x" * 8192

    r = rest.client.post("/v1/import", content=chunks(), headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (413, "payload_too_large")
    listed = rest.client.get("/v1/memories", params={"user_id": "u_big"}, headers=rest.acme).json()
    assert listed["results"] == []
    assert 'engram_http_errors_total{code="payload_too_large"} 2.0' in rest.client.get("/metrics").text


def test_batch_over_the_limit_is_413_and_stores_nothing(rest):
    messages = [{"role": "user", "content": f"turn {i}"} for i in range(21)]  # limit 20
    r = rest.client.post("/v1/memories", json={"messages": messages, "user_id": "u_batch"}, headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (413, "payload_too_large")
    assert rest.client.get("/v1/memories", params={"user_id": "u_batch"}, headers=rest.acme).json()["results"] == []


def test_top_k_and_limit_out_of_range(rest):
    for top_k in (0, 51, -3):
        r = rest.client.post("/v1/search", json={"query": "q", "user_id": "u", "top_k": top_k}, headers=rest.acme)
        assert (r.status_code, r.json()["code"]) == (422, "validation_error"), top_k
    r = rest.client.get("/v1/memories", params={"user_id": "u", "limit": 1000}, headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")


def test_validation_errors_are_reformatted(rest):
    r = rest.client.post("/v1/search", json={"user_id": "u", "top_k": "many"}, headers=rest.acme)
    body = r.json()
    assert r.status_code == 422 and body["code"] == "validation_error" and body["message"]
    assert {tuple(d["loc"]) for d in body["details"]} >= {("body", "query"), ("body", "top_k")}
    r = rest.client.post("/v1/search", content=b"{not json", headers={**rest.acme, "content-type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")


def test_unknown_route_and_method_are_json(rest):
    r = rest.client.get("/v1/nothing-here", headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = rest.client.put("/v1/search", headers=rest.acme)
    assert (r.status_code, r.json()["code"]) == (405, "method_not_allowed")


def test_unexpected_error_is_500_internal_without_a_stack(tmp_path, embedder):
    from tests.api.rest_support import start

    client, app = start(tmp_path, embedder, raise_server_exceptions=False)

    def boom() -> None:
        raise RuntimeError("secret detail /etc/passwd line 42")

    app.add_api_route("/boom", boom)
    with client:
        r = client.get("/boom")
    assert (r.status_code, r.json()["code"]) == (500, "internal")
    assert "secret" not in r.text and "Traceback" not in r.text


def test_not_ready_until_startup_has_loaded_the_embedder(tmp_path, embedder):
    from tests.api.rest_support import bearer, start

    client, app = start(tmp_path, embedder)
    service = app.state.service
    service.accounts.create_tenant("early")
    _, key = service.accounts.create_key("early")
    # Outside ``with client`` the lifespan has not run: the process is alive but not ready.
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"] == {"embedder": False, "control_store": True}
    r = client.get("/v1/memories", params={"user_id": "u"}, headers=bearer(key))
    assert (r.status_code, r.json()["code"]) == (503, "not_ready")
    with client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/v1/memories", params={"user_id": "u"}, headers=bearer(key)).status_code == 200
