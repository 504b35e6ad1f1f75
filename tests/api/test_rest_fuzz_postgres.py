"""Schemathesis against the real service on PostgreSQL (control store and tenant schema there): the
backend that refuses NUL in text and has 32-bit INTEGER ids, where SQLite accepted both. Chat
routes are left to test_rest_fuzz.py (same retrieval code; no model is loaded here)."""
import uuid

import httpx

from tests.api.fuzz_support import fuzz
from tests.api.rest_support import ADMIN, bearer
from tests.api.served_support import serve
from tests.helpers import drop_pg_schema, pg_schema_url

EXAMPLES = 8  # per operation and mode


def test_schemathesis_on_postgres_finds_no_server_error(tmp_path, embedder):
    control, tenant = f"t_ctl_{uuid.uuid4().hex[:10]}", f"fzpg{uuid.uuid4().hex[:8]}"
    url_db = pg_schema_url(control, create=True)
    try:
        with serve(tmp_path, embedder, None, llm="none", database_url=url_db) as url:
            client = httpx.Client(base_url=url, timeout=60)
            admin = bearer(ADMIN)
            assert client.post("/v1/admin/tenants", json={"id": tenant}, headers=admin).status_code == 201
            key = bearer(client.post(f"/v1/admin/tenants/{tenant}/keys", json={}, headers=admin).json()["key"])
            keeper = f"keeper-{uuid.uuid4().hex}"
            kept = client.post("/v1/memories", json={"content": "Kept: the gutters were cleared in October",
                                                     "user_id": keeper}, headers=key).json()["results"][0]

            report = fuzz(url, key, admin, EXAMPLES, include=lambda path: not path.startswith("/v1/chat"),
                          scope_field=lambda path: "user_id" if path in ("/v1/search", "/v1/memories") else None)
            print(report.line("postgresql"))

            assert report.failures == [], "\n".join(report.failures[:10])
            assert report.operations() >= 31
            after = client.get(f"/v1/memories/{kept['id']}", headers=key).json()
            assert (after["content"], after["archived"]) == (kept["content"], False)
    finally:
        drop_pg_schema(f"tenant_{tenant}")
        drop_pg_schema(control)
