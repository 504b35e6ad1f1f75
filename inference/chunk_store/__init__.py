"""Tiered store of chunk KV caches (RAM → disk → Redis) with pluggable eviction policies.

Usage: ``from inference.chunk_store import StoreConfig, TieredChunkStore``.
"""
from inference.chunk_store.policies import EvictionPolicy, make_policy
from inference.chunk_store.store import StoreConfig, TieredChunkStore

__all__ = ["EvictionPolicy", "StoreConfig", "TieredChunkStore", "make_policy"]
