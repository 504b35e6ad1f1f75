"""The real service with the real chat engine (SmolLM2, int4, a tiered chunk store in tmp) for the
chat tests: one engine per test process, one app per test module, two tenants with keys."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest

from tests.api.rest_support import ADMIN, LIMITS, bearer
from tests.inference.smollm import require_model


@functools.cache
def chat_engine(kv_dir: str):
    """One LocalEngine for the process, with a value-aware chunk store (RAM + disk)."""
    from inference.chunk_store import StoreConfig, TieredChunkStore
    from inference.local_engine import LocalEngine

    store = TieredChunkStore(StoreConfig(ram_bytes=64 << 20, disk_dir=kv_dir, disk_bytes=256 << 20, policy="value"))
    return LocalEngine(threads=2, chunk_store=store, prefix_cache_blocks=32, block_size=64)


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    require_model()
    return chat_engine(str(tmp_path_factory.mktemp("kv")))


@dataclass
class ChatRest:
    client: object
    app: object
    acme: dict
    globex: dict
    keys: dict


def start_chat(tmp_dir, embedder, engine, **overrides):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    settings = Settings(data_dir=tmp_dir, admin_key=ADMIN, durable=False,
                        **{"job_workers": 0, "job_process": False, **LIMITS, **overrides})  # no worker process here
    app = create_app(settings, embedder=embedder, llm=engine)
    return TestClient(app), app


def make_tenants(client) -> dict:
    admin, keys = bearer(ADMIN), {}
    for tenant in ("acme", "globex"):
        assert client.post("/v1/admin/tenants", json={"id": tenant}, headers=admin).status_code == 201
        keys[tenant] = client.post(f"/v1/admin/tenants/{tenant}/keys", json={"label": "t"}, headers=admin).json()["key"]
    return keys


@pytest.fixture(scope="module")
def chat_rest(tmp_path_factory, embedder, engine):
    client, app = start_chat(tmp_path_factory.mktemp("chat"), embedder, engine)
    with client:
        keys = make_tenants(client)
        yield ChatRest(client, app, bearer(keys["acme"]), bearer(keys["globex"]), keys)
