"""Process-wide settings for the test run.

They must be in place before torch is imported anywhere: OpenMP's default spin-wait makes torch
20-50x slower whenever another process uses a core, and nothing may reach a model hub.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import uuid  # noqa: E402

import pytest  # noqa: E402

from tests.helpers import T0, drop_pg_schema, pg_schema_url  # noqa: E402


@pytest.fixture(scope="session")
def embedder():
    """The real MiniLM model, loaded once per test session."""
    from retrieval.embedder import MiniLMEmbedder

    return MiniLMEmbedder()


@pytest.fixture()
def clock():
    from memory.clock import FrozenClock

    return FrozenClock(T0)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """One test body, two backends: a SQLite file in tmp_path, or a fresh PostgreSQL schema
    (named in the URL's search_path, so every engine made from the URL works inside it) that is
    dropped afterwards. PostgreSQL must be up (127.0.0.1:5432 here and in CI): no skipping."""
    if request.param == "sqlite":
        from memory.database import sqlite_url

        yield sqlite_url(tmp_path / "engram.db")
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield pg_schema_url(schema, create=True)
    drop_pg_schema(schema)


@pytest.fixture()
def backend(database_url):
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture()
def mem(tmp_path, database_url, embedder, clock):
    """An Engram on a real database (SQLite file or PostgreSQL schema) with the real embedder and a
    frozen clock; its derived index is saved in tmp_path. No worker thread: enrichment jobs run
    when a test calls ``wait_for_jobs``/``run_jobs``, so what a test sees does not depend on a
    background thread's timing."""
    from api.engram import Engram

    m = Engram(database_url=database_url, index_dir=tmp_path / "engram.index", embedder=embedder, clock=clock,
               workers=0)
    yield m
    m.close()
