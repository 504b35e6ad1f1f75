"""``engram worker``: every tenant's job threads in a process of their own.

The request process then never shares its GIL, its embedder or (at a higher niceness) its cores
with enrichment. The queue is SQL, so nothing needs to be handed over: this process opens each
tenant of the control database (and any created later, within ``scan_s``) with
``settings.job_workers`` claiming threads, and the server opens its tenants with none. Several
claimers are safe: a claim is one UPDATE (atomic under SQLite's single writer, ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL) and a lease fences each job.

Stopping (SIGTERM/SIGINT, or the parent ``engram serve`` gone) lets each job in hand finish and
gives the claimed-but-unstarted ones back; a killed worker's jobs are taken over when their lease
(``ENGRAM_JOB_LEASE_SECONDS``) runs out.

Usage: ``run_worker(Settings(), threading.Event())`` (``engram worker`` installs the signals).
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

from api.settings import Settings
from api.shared_embedder import LockedEmbedder
from api.tenants import TenantRegistry
from memory.accounts import AccountStore, open_accounts_engine
from retrieval.embedder import Embedder, MiniLMEmbedder

log = logging.getLogger("engram.worker")


def run_worker(settings: Settings, stop: threading.Event, *, embedder: Embedder | None = None, llm: Any = None,
               parent_pid: int | None = None, scan_s: float = 2.0, started: threading.Event | None = None) -> None:
    """Run every tenant's jobs until ``stop`` is set (or the process ``parent_pid`` is gone).
    ``started`` is set just before the first tenant's job threads can claim anything."""
    shared = LockedEmbedder(_Loaded(lambda: embedder or MiniLMEmbedder(batch_size=settings.embed_batch)))
    if llm is None and settings.enrich_llm:
        llm = job_engine(settings)
    accounts = AccountStore(open_accounts_engine(settings.control_url()))
    tenants = TenantRegistry(settings, shared, llm=llm if settings.enrich_llm else None, role="jobs")
    log.info("engram worker: %s job thread(s) per tenant", settings.job_workers)
    try:
        while not stop.is_set():
            for tenant in accounts.list_tenants():
                if stop.is_set():
                    break
                if tenants.opened(tenant.id) is None:
                    if started is not None:
                        started.set()
                    tenants.get(tenant.id)  # opening starts its job threads
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("engram serve (pid %s) is gone; stopping", parent_pid)
                break
            stop.wait(scan_s)
    finally:
        tenants.close()  # jobs in hand finish, claimed ones not started are released
        accounts.close()


def job_engine(settings: Settings) -> Any:
    """The engine of LLM jobs: the one ``settings.llm`` names, but a local one without the chat's
    KV chunk store (that store's disk folder belongs to the server process)."""
    if settings.llm.strip().lower() == "local":
        from inference.local_engine import LocalEngine

        return LocalEngine(threads=settings.llm_threads)
    from api.chat.engines import build_engine

    return build_engine(settings)


class _Loaded:
    """Calls ``make`` once, on first use (LockedEmbedder calls it under its lock)."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self._value: Any = None

    def __call__(self) -> Any:
        if self._value is None:
            self._value = self._make()
        return self._value
