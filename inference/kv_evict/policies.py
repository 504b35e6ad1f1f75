"""In-sequence eviction policies: what to observe while running, and how to score at eviction.

- ``streaming`` (StreamingLLM): attention sinks + recent window; observes nothing.
- ``snapkv``: keys scored by the attention of the last ``window`` queries, per KV head, pooled.
- ``h2o``: keys scored by the attention accumulated since they entered the cache.
"""
from __future__ import annotations

from dataclasses import dataclass

from inference.errors import InvalidParams
from inference.gguf_file import ModelConfig
from inference.kv_evict.observers import AccumulatedAttention, AttentionObserver, WindowQueries

SEQ_POLICIES = ("streaming", "snapkv", "h2o")


@dataclass(frozen=True)
class SeqEvictionConfig:
    """``budget``: KV slots the conversation may hold; ``free``: slots freed per compaction
    (evicting a batch amortises the gather); sinks and recent window as in :mod:`select`."""

    budget: int
    policy: str = "streaming"
    n_sink: int = 4
    n_recent: int = 32
    free: int | None = None  # default budget // 4
    window: int = 32  # SnapKV observation window
    kernel: int = 5  # SnapKV pooling

    def validate(self) -> None:
        if self.policy not in SEQ_POLICIES:
            raise InvalidParams(f"policy must be one of {SEQ_POLICIES}, got {self.policy!r}")
        if self.budget < 2 or self.n_sink < 0 or self.n_recent < 0:
            raise InvalidParams("budget must be >= 2 and sinks/recent >= 0")
        if self.n_sink + self.n_recent >= self.budget - self.n_free:
            raise InvalidParams("sinks + recent window must leave room under budget - free")

    @property
    def n_free(self) -> int:
        return self.free if self.free is not None else max(1, self.budget // 4)


def make_observer(cfg: SeqEvictionConfig, model_cfg: ModelConfig) -> AttentionObserver | None:
    if cfg.policy == "snapkv":
        return WindowQueries(model_cfg.n_layers, cfg.window, cfg.kernel)
    if cfg.policy == "h2o":
        return AccumulatedAttention(model_cfg.n_layers, model_cfg.n_kv_heads, cfg.budget)
    return None
