"""One LLM engine shared by every tenant (real SmolLM2): each tenant's notes get an ``enrich`` job
run by that engine, and the tenants stay apart."""
import time

import pytest

from tests.api.rest_support import ADMIN, bearer, start
from tests.inference.smollm import require_model


@pytest.fixture(scope="module")
def engine():
    require_model()
    from inference.local_engine import LocalEngine

    return LocalEngine()


def test_tenants_share_one_engine_and_their_notes_are_enriched(tmp_path, embedder, engine):
    client, app = start(tmp_path, embedder, llm=None)
    app.state.service.tenants.llm = engine  # what ENGRAM_ENRICH_LLM=true does at startup
    with client:
        keys = {}
        for tenant in ("alpha", "beta"):
            client.post("/v1/admin/tenants", json={"id": tenant}, headers=bearer(ADMIN))
            keys[tenant] = bearer(client.post(f"/v1/admin/tenants/{tenant}/keys", json={}, headers=bearer(ADMIN)).json()["key"])
            r = client.post("/v1/memories", json={"content": f"{tenant} team moved the standup to 9am", "user_id": "u"},
                            headers=keys[tenant])
            assert r.status_code == 201
        open_tenants = app.state.service.tenants.open_tenants()
        assert open_tenants["alpha"].llm is engine and open_tenants["beta"].llm is engine
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            jobs = {t: client.get("/v1/jobs", headers=keys[t]).json() for t in keys}
            if all(j and all(x["state"] in ("done", "failed") for x in j) for j in jobs.values()):
                break
            time.sleep(0.5)
        for tenant, found in jobs.items():
            kinds = {j["kind"]: j["state"] for j in found}
            assert kinds.get("enrich") in ("done", "failed") and "graph" in kinds, (tenant, found)
            assert all(j["note_id"] for j in found)
        alpha_ids = {j["note_id"] for j in jobs["alpha"]}
        assert alpha_ids.isdisjoint({j["note_id"] for j in jobs["beta"]})
