"""Shared pieces of the REST tests: the real app on a tmp data dir with the session's real embedder,
two tenants with keys. Import the fixtures into a test module with ``from tests.api.rest_support import *``."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

ADMIN = "admin-secret-for-tests"
LIMITS = {"max_body_bytes": 64 * 1024, "max_batch": 20, "max_top_k": 50, "key_cache_seconds": 0.0}


@dataclass
class Rest:
    """A started app: the TestClient (an httpx.Client) and the headers of two tenants and the admin."""

    client: object
    app: object
    acme: dict
    globex: dict
    admin: dict
    acme_key_id: str


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def start(tmp_dir, embedder, raise_server_exceptions=True, llm=None, **overrides):
    """Build the real app; returns (TestClient — enter it to start the app —, app)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    # No chat model unless a test asks for one (tests/api/chat_support.py): REST tests stay light.
    # no `engram worker` runs beside an in-process app: its tenants run their own job threads
    settings = Settings(data_dir=tmp_dir, admin_key=ADMIN, durable=False,
                        **{"llm": "none", "job_process": False, **LIMITS, **overrides})
    app = create_app(settings, embedder=embedder, llm=llm)
    return TestClient(app, raise_server_exceptions=raise_server_exceptions), app


@pytest.fixture(scope="module")
def rest(tmp_path_factory, embedder):
    client, app = start(tmp_path_factory.mktemp("rest"), embedder)
    with client:
        admin = bearer(ADMIN)
        keys = {}
        for tenant in ("acme", "globex"):
            assert client.post("/v1/admin/tenants", json={"id": tenant}, headers=admin).status_code == 201
            made = client.post(f"/v1/admin/tenants/{tenant}/keys", json={"label": "tests"}, headers=admin).json()
            keys[tenant] = made
        yield Rest(client, app, bearer(keys["acme"]["key"]), bearer(keys["globex"]["key"]), admin, keys["acme"]["id"])
