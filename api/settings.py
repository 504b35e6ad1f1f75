"""The service's settings: one pydantic-settings object, read from ``ENGRAM_*`` variables at the edge.

Built by the CLI (``engram serve``) or ``create_app_from_env`` and passed down; nothing reads the
environment at import time. Usage: ``Settings(data_dir="/var/lib/engram", admin_key="...")``.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the REST service; defaults give a local SQLite deployment under ``./engram-data``."""

    model_config = SettingsConfigDict(env_prefix="ENGRAM_", extra="ignore")

    data_dir: Path = Field(Path("./engram-data"), description="tenants' SQLite files and indexes, control.db")
    database_url: str | None = Field(None, description="postgresql://... to keep tenants in one PostgreSQL database")
    admin_key: SecretStr | None = Field(None, description="key for /v1/admin (tenant and key management)")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="larger request bodies get 413")
    max_batch: int = Field(1000, ge=1, description="notes per add or import request")
    max_top_k: int = Field(100, ge=1, le=1000, description="largest top_k / limit a request may ask for")
    rate_limit: float = Field(0.0, ge=0.0, description="requests per second per API key in each process "
                              "(token bucket; over it: 429 with Retry-After); 0 turns the limit off")
    rate_limit_burst: int | None = Field(None, ge=1, description="requests a key may make at once "
                                         "(default: twice rate_limit, at least 1)")
    rate_limit_redis_url: str | None = Field(None, description="redis://... to share each key's bucket between "
                                             "processes (else each process keeps its own)")
    key_cache_seconds: float = Field(5.0, ge=0.0, description="how long a verified key is trusted without a lookup")
    durable: bool = Field(True, description="fsync every commit (SQLite synchronous=FULL)")
    embed_batch: int = 64
    job_workers: int = Field(1, ge=0, description="enrichment (graph) job threads per open tenant")
    job_process: bool = Field(True, description="run the job threads in one separate `engram worker` process "
                              "(`engram serve` starts and restarts it) so enrichment never shares the request "
                              "process's GIL, embedder or cores; false: inside each server process")
    job_process_nice: int = Field(10, ge=0, le=19, description="niceness of the worker process: requests get "
                                  "the CPU first")
    graph_follow_seconds: float = Field(1.0, gt=0, description="when another process writes a tenant's graph, "
                                        "how often a graph walk checks for its writes")
    job_lease_seconds: float = Field(300.0, gt=0, description="how long a claimed job is held; a crashed "
                                     "process's jobs are taken over once their lease has run out")
    llm: str = Field("local", description="chat model: 'local' (SmolLM2 in-process, chunk KV reuse), 'none' "
                                          "(chat answers 503) or a litellm model name, e.g. 'openai/gpt-4o-mini'")
    llm_api_base: str | None = Field(None, description="base URL of the litellm model's server")
    llm_api_key: SecretStr | None = Field(None, description="API key of the litellm model's provider")
    llm_threads: int = Field(2, ge=1, description="torch threads of the local engine")
    kv_ram_bytes: int = Field(256 << 20, ge=1 << 20, description="RAM budget of the chunk KV store")
    kv_disk_bytes: int = Field(2 << 30, ge=1 << 20, description="disk budget of the chunk KV store (<data_dir>/kv)")
    chat_context_tokens: int = Field(384, ge=16, description="token budget of the memories a chat turn retrieves")
    chat_window_tokens: int = Field(1024, ge=16, description="token budget of a conversation's memory window: "
                                    "earlier turns' memories stay in the prompt, and their KV is reused")
    chat_max_tokens: int = Field(1024, ge=1, description="largest max_tokens a chat request may ask for (larger: 400)")
    enrich_llm: bool = Field(False, description="also let the engine build notes (keywords, tags, context, "
                             "evolution) and extract facts in every tenant's jobs; off keeps the rule-based path")

    def burst(self) -> int:
        """The bucket size of the per-key rate limit."""
        return self.rate_limit_burst or max(1, round(2 * self.rate_limit))

    def control_url(self) -> str:
        """Where tenants and keys live: the shared database, else ``<data_dir>/control.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'control.db').expanduser().resolve()}"

    def tenant_dir(self, tenant_id: str) -> Path:
        return (self.data_dir / "tenants" / tenant_id).expanduser().resolve()

    def uses_postgres(self) -> bool:
        return bool(self.database_url) and self.database_url.startswith(("postgresql", "postgres"))
