"""In-sequence KV eviction: StreamingLLM sinks + window, SnapKV, H2O under a slot budget.

Usage: ``from inference.kv_evict import BudgetedSession, SeqEvictionConfig``.
"""
from inference.kv_evict.policies import SEQ_POLICIES, SeqEvictionConfig
from inference.kv_evict.select import select_keep
from inference.kv_evict.session import BudgetedSession

__all__ = ["SEQ_POLICIES", "BudgetedSession", "SeqEvictionConfig", "select_keep"]
