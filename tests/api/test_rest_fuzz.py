"""Schemathesis over the OpenAPI schema against the real service on a real uvicorn socket (SQLite,
the real chat engine with a small ENGRAM_CHAT_MAX_TOKENS so generated chats stay short): no
operation answers 5xx, every error is JSON {code, message}, and notes stored before are intact."""
import uuid

import httpx

from tests.api.chat_support import engine  # noqa: F401  (fixture)
from tests.api.fuzz_support import fuzz
from tests.api.rest_support import ADMIN, bearer
from tests.api.served_support import serve

EXAMPLES = 8  # per operation and mode (schema-valid, schema-violating)


def _scope_field(path: str) -> str | None:
    return {"/v1/chat": "user_id", "/v1/chat/completions": "user", "/v1/search": "user_id",
            "/v1/memories": "user_id"}.get(path)


def test_schemathesis_finds_no_server_error(tmp_path, embedder, engine):  # noqa: F811
    tenant, keeper = f"fz{uuid.uuid4().hex[:8]}", f"keeper-{uuid.uuid4().hex}"
    with serve(tmp_path, embedder, engine, chat_max_tokens=8) as url:
        client = httpx.Client(base_url=url, timeout=60)
        admin = bearer(ADMIN)
        assert client.post("/v1/admin/tenants", json={"id": tenant}, headers=admin).status_code == 201
        key = bearer(client.post(f"/v1/admin/tenants/{tenant}/keys", json={}, headers=admin).json()["key"])
        kept = client.post("/v1/memories", json={"content": "Kept: the boiler was serviced in March", "user_id": keeper},
                           headers=key).json()["results"][0]

        report = fuzz(url, key, admin, EXAMPLES, scope_field=_scope_field)
        print(report.line("sqlite+chat"))

        assert report.failures == [], "\n".join(report.failures[:10])
        assert report.operations() >= 28
        ok = {op for (op, status) in report.statuses if status < 300}
        assert {"POST /v1/memories", "POST /v1/search", "POST /v1/chat"} <= ok  # the cases reached real work
        after = client.get(f"/v1/memories/{kept['id']}", headers=key).json()
        assert (after["content"], after["archived"]) == (kept["content"], False)
