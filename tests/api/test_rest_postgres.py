"""Two REST app instances (as two `engram serve` processes would be) on one PostgreSQL: tenants and
keys made through one work through the other, a tenant lives in its own schema, and a note written
through one is found by search through the other (each follows the change feed)."""
import time
import uuid

from tests.api.rest_support import ADMIN, bearer, start
from tests.helpers import drop_pg_schema, pg_schema_url


def test_two_apps_share_tenants_keys_and_notes(tmp_path, embedder):
    control = f"t_ctl_{uuid.uuid4().hex[:10]}"
    tenant = f"pgt_{uuid.uuid4().hex[:10]}"
    url = pg_schema_url(control, create=True)
    try:
        first, _ = start(tmp_path / "a", embedder, database_url=url)
        second, _ = start(tmp_path / "b", embedder, database_url=url)
        with first, second:
            admin = bearer(ADMIN)
            assert first.post("/v1/admin/tenants", json={"id": tenant}, headers=admin).status_code == 201
            key = bearer(first.post(f"/v1/admin/tenants/{tenant}/keys", json={"label": "t"}, headers=admin).json()["key"])
            made = second.post("/v1/memories", json={"content": "Ann's allotment is behind the railway station",
                                                     "user_id": "ann"}, headers=key)
            assert made.status_code == 201
            note_id = made.json()["results"][0]["id"]
            # The first app opens the tenant now (catch-up on open) and follows it from then on.
            assert first.post("/v1/search", json={"query": "allotment", "user_id": "ann"},
                              headers=key).json()["results"][0]["id"] == note_id
            later = second.post("/v1/memories", json={"content": "Ann grows leeks and runner beans",
                                                      "user_id": "ann"}, headers=key).json()["results"][0]["id"]
            found, end = [], time.monotonic() + 15
            while time.monotonic() < end and later not in found:
                found = [h["id"] for h in first.post("/v1/search", json={"query": "leeks runner beans",
                                                                         "user_id": "ann"}, headers=key).json()["results"]]
                time.sleep(0.05)
            assert later in found
    finally:
        drop_pg_schema(f"tenant_{tenant}")
        drop_pg_schema(control)
