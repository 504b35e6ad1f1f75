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

import pytest  # noqa: E402

from tests.helpers import T0  # noqa: E402


@pytest.fixture(scope="session")
def embedder():
    """The real MiniLM model, loaded once per test session."""
    from retrieval.embedder import MiniLMEmbedder

    return MiniLMEmbedder()


@pytest.fixture()
def clock():
    from memory.clock import FrozenClock

    return FrozenClock(T0)


@pytest.fixture()
def mem(tmp_path, embedder, clock):
    """An Engram on a real SQLite file in tmp_path, with the real embedder and a frozen clock.
    No worker thread: enrichment jobs run when a test calls ``wait_for_jobs``/``run_jobs``, so
    what a test sees does not depend on a background thread's timing."""
    from api.engram import Engram

    m = Engram(tmp_path / "engram.db", embedder=embedder, clock=clock, workers=0)
    yield m
    m.close()
