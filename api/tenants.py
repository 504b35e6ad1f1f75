"""One ``Engram`` per tenant, opened on first use and sharing one embedder (strong isolation: a
query can only ever see the database of the key's tenant, there is no tenant column to forget).

Usage::

    registry = TenantRegistry(settings, embedder)
    mem = registry.get("acme")          # opens <data_dir>/tenants/acme/engram.db the first time
    registry.close()                    # saves every open tenant's index
"""
from __future__ import annotations

import dataclasses
import inspect
import threading
from typing import Any, Literal

from api.config import EngramConfig
from api.engram import Engram
from api.settings import Settings
from memory.accounts import check_tenant_id
from memory.config import JobConfig, MemoryConfig
from retrieval.embedder import Embedder


class TenantRegistry:
    """Open tenants by id. Thread-safe; a tenant is opened once even when many requests race for it."""

    def __init__(self, settings: Settings, embedder: Embedder, config: EngramConfig | None = None,
                 llm: Any | None = None, role: Literal["server", "jobs"] = "server") -> None:
        """``role``: "server" answers requests (its tenants run no job threads when
        ``settings.job_process``: an ``engram worker`` process does); "jobs" is that worker process
        (job threads, no index of its own on disk)."""
        self._settings = settings
        self._role = role
        self._embedder = embedder
        self.llm = llm  # one engine for every tenant (it serialises its own generations); set before use
        self._config = config or EngramConfig(
            durable=settings.durable, embed_batch=settings.embed_batch,
            memory=MemoryConfig(jobs=JobConfig(lease_s=settings.job_lease_seconds)))
        self._open: dict[str, Engram] = {}
        self._lock = threading.Lock()
        self._opening: dict[str, threading.Lock] = {}
        if role == "jobs":  # the server owns the saved index; a second writer of its files would race it
            self._config = dataclasses.replace(self._config, persist_index=False)
        if settings.uses_postgres() and "db_schema" not in inspect.signature(Engram).parameters:
            # Fail at startup, not on a tenant's first request.
            raise RuntimeError("PostgreSQL tenants need Engram(db_schema=...), which this build lacks")

    def get(self, tenant_id: str) -> Engram:
        """The tenant's Engram (the caller has already checked the tenant exists and is enabled)."""
        mem = self._open.get(tenant_id)
        if mem is not None:
            return mem
        with self._lock:
            gate = self._opening.setdefault(tenant_id, threading.Lock())
        with gate:  # opening loads an index: do it outside the registry lock, once per tenant
            if tenant_id not in self._open:
                self._open[tenant_id] = self._open_tenant(check_tenant_id(tenant_id))
            return self._open[tenant_id]

    def opened(self, tenant_id: str) -> Engram | None:
        """The tenant's Engram if it is open already (no I/O), else None."""
        return self._open.get(tenant_id)

    def open_tenants(self) -> dict[str, Engram]:
        """A snapshot of the tenants open in this process (for metrics)."""
        return dict(self._open)

    def close(self) -> None:
        with self._lock:
            for mem in self._open.values():
                mem.close()
            self._open.clear()

    def _open_tenant(self, tenant_id: str) -> Engram:
        """The single place that decides where a tenant's data lives."""
        folder = self._settings.tenant_dir(tenant_id)
        folder.mkdir(parents=True, exist_ok=True)
        common: dict[str, Any] = {"embedder": self._embedder, "config": self._config, "llm": self.llm,
                                  "workers": self._job_threads(), "graph_follow_s": self._graph_follow_s()}
        if self._settings.uses_postgres():
            # One database, one schema per tenant; the derived index stays on local disk and
            # follows the change feed, so notes written through another process become searchable here.
            return Engram(database_url=self._settings.database_url, db_schema=f"tenant_{tenant_id}",
                          index_dir=folder / "engram.index", follow=True, **common)
        # Several server processes share the tenant's SQLite file: each index follows the others'
        # writes (polling the change log), or a note added through one would stay unsearchable in the rest.
        return Engram(folder / "engram.db", follow=self._follows_notes(), **common)

    def _job_threads(self) -> int:
        if self._role == "server" and self._settings.job_process:
            return 0
        return self._settings.job_workers

    def _others_write_graph(self) -> bool:
        return self._settings.workers > 1 or self._settings.job_process

    def _graph_follow_s(self) -> float | None:
        """Another process writes the tenant's graph: the networkx view checks for its writes."""
        return self._settings.graph_follow_seconds if self._others_write_graph() else None

    def _follows_notes(self) -> bool:
        """A server follows the other server processes' notes; the job process follows every
        note, since ``enrich`` jobs look up a new note's neighbours in its index."""
        return self._settings.workers > 1 or (self._role == "jobs" and self.llm is not None)
