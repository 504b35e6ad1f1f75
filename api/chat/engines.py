"""The chat engine named by the settings: one per process, shared by every tenant.

- ``local``: SmolLM2 in-process with a prefix cache and a tiered chunk store (RAM, then
  ``<data_dir>/kv`` on disk) under the value-aware policy, so notes' retention steers eviction;
- ``none``: no engine (chat routes answer 503 ``llm_unavailable``);
- anything else: a litellm model name (remote; the memory path is the same, chunk reuse is not).

Usage: ``engine = build_engine(settings)`` (loads the model: call it in a worker thread).
"""
from __future__ import annotations

from typing import Any

from api.settings import Settings


def build_engine(settings: Settings) -> Any | None:
    name = settings.llm.strip()
    if name.lower() == "none":
        return None
    if name.lower() == "local":
        return _local(settings)
    from inference.litellm_engine import LiteLLMEngine

    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return LiteLLMEngine(name, api_base=settings.llm_api_base, api_key=key)


def _local(settings: Settings) -> Any:
    from inference.chunk_store import StoreConfig, TieredChunkStore
    from inference.local_engine import LocalEngine

    store = TieredChunkStore(StoreConfig(ram_bytes=settings.kv_ram_bytes, disk_dir=settings.data_dir / "kv",
                                         disk_bytes=settings.kv_disk_bytes, disk_codec="fp16", policy="value"))
    return LocalEngine(threads=settings.llm_threads, chunk_store=store, prefix_cache_blocks=32, block_size=64)
