"""API keys are never stored or logged in clear: after requests that carry keys (accepted, refused,
revoked, rate limited, crashing), no byte of the data dir, no row of the control or tenant
database (SQLite and PostgreSQL), and no log record (every logger at DEBUG, uvicorn's access log
included, on a real socket) holds a key's secret; the control store holds its salted digest."""
import logging
import uuid

import httpx
import pytest

from memory.accounts import digest, split_key
from tests.api.rest_support import ADMIN, bearer, start
from tests.api.served_support import serve_app
from tests.helpers import POSTGRES_URL, drop_pg_schema, pg_schema_url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    """Overrides for the app's settings, and the PostgreSQL schemas to dump (none for SQLite)."""
    if request.param == "sqlite":
        yield {}, []
        return
    control = f"t_ctl_{uuid.uuid4().hex[:10]}"
    schemas = [control]
    yield {"database_url": pg_schema_url(control, create=True)}, schemas
    for schema in schemas:
        drop_pg_schema(schema)


def _traffic(url, tenant) -> list[str]:
    """Requests carrying keys, on every path a key takes; returns the clear keys used."""
    c = httpx.Client(base_url=url, timeout=60)
    admin = bearer(ADMIN)
    assert c.post("/v1/admin/tenants", json={"id": tenant}, headers=admin).status_code == 201
    made = c.post(f"/v1/admin/tenants/{tenant}/keys", json={"label": "secrecy"}, headers=admin).json()
    key, spare = made["key"], c.post(f"/v1/admin/tenants/{tenant}/keys", json={}, headers=admin).json()
    key_id, secret = split_key(key)
    assert c.post("/v1/memories", json={"content": "Ann keeps bees", "user_id": "ann"}, headers=bearer(key)).status_code == 201
    assert c.post("/v1/search", json={"query": "bees", "user_id": "ann"}, headers={"X-API-Key": key}).status_code == 200
    assert c.get("/v1/memories/nope", headers=bearer(key)).status_code == 404
    assert c.get("/v1/memories", params={"user_id": "ann"}, headers=bearer(f"egm_{key_id}_{secret[::-1]}")).status_code == 401
    assert c.get("/v1/memories", params={"user_id": "ann"}, headers=bearer("not-a-key-at-all")).status_code == 401
    assert c.get("/v1/admin/tenants", headers=bearer(key)).status_code == 403
    assert c.get("/v1/memories", params={"user_id": "a\x00"}, headers=bearer(key)).status_code == 422
    crash = c.get("/boom", headers=bearer(key))
    # uvicorn closes the connection after an unhandled error; the 500 says so, so the client's
    # next request opens a new one instead of failing on the closed one.
    assert crash.status_code == 500 and crash.headers["connection"] == "close"
    assert c.delete(f"/v1/admin/keys/{spare['id']}", headers=admin).status_code == 200
    assert c.get("/v1/memories", params={"user_id": "ann"}, headers=bearer(spare["key"])).status_code == 401
    statuses = {c.get("/v1/memories", params={"user_id": "ann"}, headers=bearer(key)).status_code for _ in range(30)}
    assert 429 in statuses  # the limiter saw the key too
    return [key, spare["key"], ADMIN]


def test_keys_are_not_in_the_database_files_or_logs(tmp_path, embedder, backend, caplog):
    overrides, schemas = backend
    tenant = f"sec{uuid.uuid4().hex[:8]}"
    schemas.append(f"tenant_{tenant}")
    _, app = start(tmp_path, embedder, raise_server_exceptions=False, rate_limit=1.0, rate_limit_burst=15, **overrides)

    def boom() -> None:
        raise RuntimeError("a bug; the request carried a key")

    app.add_api_route("/boom", boom)
    caplog.set_level(logging.DEBUG)
    with serve_app(app, log_level="debug", log_config=None, access_log=True) as url:
        keys = _traffic(url, tenant)

    secrets = [split_key(k)[1] if split_key(k) else k for k in keys]
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "GET /v1/memories" in logged and "unhandled error" in logged  # the logs were captured
    assert [s for s in secrets if s in logged] == []
    stored = _dump(tmp_path, overrides, schemas)
    assert [s for s in secrets if s in stored] == []
    key_id, secret = split_key(keys[0])
    salt, stored_digest = _key_row(app, key_id)
    assert stored_digest == digest(salt, secret) and len(salt) >= 32  # salted SHA-256, nothing else


def _dump(data_dir, overrides, schemas) -> str:
    """Every file under the data dir (SQLite files, WAL, indexes) and, on PostgreSQL, every row."""
    parts = [p.read_bytes().decode("latin-1") for p in data_dir.rglob("*") if p.is_file()]
    if overrides:
        import psycopg

        with psycopg.connect(POSTGRES_URL.replace("+psycopg", "")) as conn:
            for schema in schemas:
                tables = [r[0] for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))]
                assert tables, schema
                for table in tables:
                    parts += [r[0] for r in conn.execute(f'SELECT row_to_json(t)::text FROM "{schema}"."{table}" t')]
    return "\n".join(parts)


def _key_row(app, key_id):
    from sqlalchemy import select

    from memory.accounts import ApiKeyRow

    with app.state.service.accounts._sessions() as s:
        row = s.execute(select(ApiKeyRow.salt, ApiKeyRow.digest).where(ApiKeyRow.id == key_id)).one()
    return row.salt, row.digest
