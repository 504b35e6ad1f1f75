"""Search and add latency through the REST API (a real ``engram serve`` on 127.0.0.1) beside the
embedded ``Engram`` on the same database, in the same run.

    python bench/http_latency.py                    # 10k notes, 200 queries, 8 concurrent clients
    python bench/http_latency.py --notes 2000       # quicker

Prints JSON lines: search p50/p95 for both paths (blocks of queries interleaved, so drift from
the shared machine hits both alike) and their difference, requests/s with 8 concurrent clients
for both, and single-note add latency with enrichment queued (job workers off: the graph job is
written in the note's transaction and waits), with the ``engram worker`` process draining the
graph-extraction backlog meanwhile, and with a job thread inside the server doing so (the old
default). Each add line carries the mean ms per add of each stage, server side (/metrics) and
embedded, and the load average.

    python bench/http_latency.py --notes 2000 --adds 60 --skip-search     # the add phases only
"""
from __future__ import annotations

import os

for _key, _value in {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                     "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_key, _value)  # before torch is imported (see README)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.client import Client  # noqa: E402
from api.config import EngramConfig  # noqa: E402
from api.engram import Engram  # noqa: E402
from api.settings import Settings  # noqa: E402
from bench import synthetic  # noqa: E402
from bench.served import Server  # noqa: E402
from memory.accounts import AccountStore, open_accounts_engine  # noqa: E402
from retrieval.embedder import MiniLMEmbedder  # noqa: E402

USERS = 100
TENANT = "bench"
SERVER_ENV = {"ENGRAM_MAX_TOP_K": "100"}
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def ms(samples: list[float]) -> tuple[float, float]:
    arr = np.array(samples) * 1000
    return round(float(np.percentile(arr, 50)), 2), round(float(np.percentile(arr, 95)), 2)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def build(settings: Settings, n: int, embedder: MiniLMEmbedder) -> str:
    """The tenant, its key and ``n`` notes, written through the embedded API; returns the key."""
    accounts = AccountStore(open_accounts_engine(settings.control_url()))
    accounts.create_tenant(TENANT)
    _, key = accounts.create_key(TENANT, "bench")
    accounts.close()
    folder = settings.tenant_dir(TENANT)
    folder.mkdir(parents=True)
    records = [{"content": t, "user_id": f"u{i % USERS}", "agent_id": "bench",
                "timestamp": (T0 + timedelta(minutes=i)).isoformat()} for i, t in enumerate(synthetic.notes(n))]
    start = time.perf_counter()
    with Engram(folder / "engram.db", embedder=embedder, workers=0) as mem:
        mem.add_many(records, batch_size=256)
    emit({"setup": "notes", "notes": n, "seconds": round(time.perf_counter() - start, 1)})
    return key


def server_time(url: str, route: str, status: str = "200") -> tuple[float, int]:
    """(sum of seconds, count) the server's own latency histogram holds for ``route``."""
    text = httpx.get(f"{url}/metrics").text
    label = f'{{method="POST",route="{route}",status="{status}"}}'
    found = {}
    for line in text.splitlines():
        for part in ("sum", "count"):
            if line.startswith(f"engram_http_request_duration_seconds_{part}{label}"):
                found[part] = float(line.rsplit(" ", 1)[1])
    return found.get("sum", 0.0), int(found.get("count", 0))


def search_latency(mem: Engram, client: Client, queries: list[str], url: str) -> None:
    """Each query runs embedded, then over HTTP (the order flips every query), so both paths see
    the same moment of the shared machine; ``paired_overhead`` is the median of the per-query
    differences. The server's own histogram splits the HTTP time into the app's part (routing,
    auth, validation, JSON, the threadpool hop) and the rest (client, TCP, process wake-ups)."""
    emb, http = [], []
    before = server_time(url, "/v1/search")
    for j, q in enumerate(queries):
        user = f"u{j % USERS}"
        run_emb = lambda q=q, user=user: emb.append(timed(lambda: mem.search(q, user_id=user, top_k=10, include_facts=False)))  # noqa: E731
        run_http = lambda q=q, user=user: http.append(timed(lambda: client._send_search(q, user)))  # noqa: E731
        for step in ((run_emb, run_http) if j % 2 == 0 else (run_http, run_emb)):
            step()
    after = server_time(url, "/v1/search")
    server_mean = (after[0] - before[0]) / max(after[1] - before[1], 1) * 1000
    (e50, e95), (h50, h95) = ms(emb), ms(http)
    emit({"bench": "search_latency", "notes_scope": "user (1% of the notes)", "queries": len(queries),
          "embedded_p50_ms": e50, "embedded_p95_ms": e95, "http_p50_ms": h50, "http_p95_ms": h95,
          "http_overhead_p50_ms": round(h50 - e50, 2), "http_overhead_p95_ms": round(h95 - e95, 2),
          "embedded_mean_ms": round(float(np.mean(emb)) * 1000, 2), "http_mean_ms": round(float(np.mean(http)) * 1000, 2),
          "paired_overhead_p50_ms": round(float(np.median(np.array(http) - np.array(emb))) * 1000, 2),
          "server_side_mean_ms": round(server_mean, 2)})


def throughput(call: Callable[[int, int], object], clients: int, per_client: int) -> float:
    """Requests/s of ``clients`` threads each making ``per_client`` calls."""
    errors: list[BaseException] = []

    def run(c: int) -> None:
        try:
            for i in range(per_client):
                call(c, i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return clients * per_client / (time.perf_counter() - start)


def add_stages(url: str) -> dict[str, float]:
    """The server's cumulative add stage times (``engram_add_stages_*`` in /metrics)."""
    out = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("engram_add_stages_"):
            name, value = line.split(" ", 1)
            out[name.removeprefix("engram_add_stages_")] = float(value)
    return out


def stage_means(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean milliseconds per add of each stage between two snapshots."""
    n = after.get("count", 0.0) - before.get("count", 0.0)
    return {k.removesuffix("_s"): round((v - before.get(k, 0.0)) * 1000 / n, 2)
            for k, v in after.items() if k != "count" and n > 0}


def add_latency(mem: Engram, client: Client, n: int, label: str, url: str) -> None:
    """Single-note adds, alternating embedded and HTTP (each in its own user's scope)."""
    texts = synthetic.notes(2 * n, seed=7 + int(time.time()) % 1000)
    emb, http = [], []
    before = server_time(url, "/v1/memories", status="201")
    stages_before, emb_before = add_stages(url), mem.add_times.snapshot()
    jobs_before = mem.job_store.counts()
    for i in range(n):
        run_emb = lambda t=texts[2 * i]: emb.append(timed(lambda: mem.add(t, user_id="adder_e")))  # noqa: E731
        run_http = lambda t=texts[2 * i + 1]: http.append(timed(lambda: client.add(t, user_id="adder_h")))  # noqa: E731
        for step in ((run_emb, run_http) if i % 2 == 0 else (run_http, run_emb)):
            step()
    after = server_time(url, "/v1/memories", status="201")
    jobs_after = mem.job_store.counts()
    (e50, e95), (h50, h95) = ms(emb), ms(http)
    emit({"bench": "add_latency", "enrichment": label, "adds": n, "embedded_p50_ms": e50, "embedded_p95_ms": e95,
          "http_p50_ms": h50, "http_p95_ms": h95, "http_overhead_p50_ms": round(h50 - e50, 2),
          "http_overhead_p95_ms": round(h95 - e95, 2), "embedded_mean_ms": round(float(np.mean(emb)) * 1000, 2),
          "http_mean_ms": round(float(np.mean(http)) * 1000, 2),
          "server_side_mean_ms": round((after[0] - before[0]) / max(after[1] - before[1], 1) * 1000, 2),
          "server_stage_ms": stage_means(stages_before, add_stages(url)),
          "embedded_stage_ms": stage_means(emb_before, mem.add_times.snapshot()),
          "jobs_done_meanwhile": jobs_after["done"] - jobs_before["done"], "queued_jobs_after": jobs_after["queued"],
          "loadavg": loadavg()})


def draining(mem: Engram, timeout: float = 600) -> None:
    """Wait until the server's job worker has finished a job (it loads its models first), so
    the adds are timed while the backlog is being drained."""
    done = mem.job_store.counts()["done"]
    deadline = time.monotonic() + timeout
    while mem.job_store.counts()["done"] == done:
        if time.monotonic() > deadline:
            raise RuntimeError("the job worker did not start draining")
        time.sleep(1)
    emit({"setup": "worker draining", "waited_s": round(timeout - (deadline - time.monotonic()), 1)})


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class SearchClient(Client):
    def _send_search(self, query: str, user_id: str) -> object:
        return self._send_raw("/v1/search", {"query": query, "user_id": user_id, "top_k": 10, "include_facts": False})

    def _send_raw(self, path: str, body: dict) -> object:
        r = self._http.post(path, json=body, headers=self._headers)
        r.raise_for_status()
        return r.json()


# The add phases: (label, job threads, extra server environment).
ADD_MODES = {
    "none": ("queued, no worker running", 0, {}),
    "process": ("queued, the engram worker process draining the backlog", 1, {"ENGRAM_JOB_PROCESS": "true"}),
    "thread": ("queued, a job thread in the server draining the backlog", 1, {"ENGRAM_JOB_PROCESS": "false"}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--adds", type=int, default=100)
    ap.add_argument("--add-modes", default="none,process,thread", help=f"comma list of {sorted(ADD_MODES)}")
    ap.add_argument("--skip-search", action="store_true", help="only the add phases")
    args = ap.parse_args()
    embedder = MiniLMEmbedder()
    queries = synthetic.questions(args.queries)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        key = build(settings, args.notes, embedder)
        db = settings.tenant_dir(TENANT) / "engram.db"
        # The embedded side opens the same file with its own index, never saved (the server owns it).
        mem = Engram(db, embedder=embedder, workers=0, config=EngramConfig(persist_index=False))
        try:
            if not args.skip_search:
                search_phase(mem, Path(tmp), key, queries, args)
            for mode in args.add_modes.split(","):
                label, threads, env = ADD_MODES[mode]
                server = Server(Path(tmp), job_workers=threads, env={**SERVER_ENV, **env})
                server.wait_ready()
                try:
                    with Client(server.url, api_key=key) as client:
                        client.add("warm up", user_id="adder_h")
                        mem.add("warm up", user_id="adder_e")
                        if threads:
                            draining(mem)
                        add_latency(mem, client, args.adds, label, server.url)
                finally:
                    server.stop()
        finally:
            mem.close()


def search_phase(mem: Engram, tmp: Path, key: str, queries: list[str], args: argparse.Namespace) -> None:
    server = Server(tmp, job_workers=0, env=SERVER_ENV)
    server.wait_ready()
    try:
        with SearchClient(server.url, api_key=key) as client:
            for q in queries[:10]:  # warm both paths
                mem.search(q, user_id="u0", include_facts=False)
                client._send_search(q, "u0")
            search_latency(mem, client, queries, url=server.url)
            per = max(1, args.queries // args.clients)
            emb_rps = throughput(lambda c, i: mem.search(queries[(c * per + i) % len(queries)],
                                                         user_id=f"u{i % USERS}", include_facts=False), args.clients, per)
            clients = [SearchClient(server.url, api_key=key) for _ in range(args.clients)]
            http_rps = throughput(lambda c, i: clients[c]._send_search(queries[(c * per + i) % len(queries)],
                                                                       f"u{i % USERS}"), args.clients, per)
            for c in clients:
                c.close()
            emit({"bench": "search_throughput", "clients": args.clients, "requests": args.clients * per,
                  "embedded_threads_rps": round(emb_rps, 1), "http_rps": round(http_rps, 1),
                  "http_vs_embedded": round(http_rps / emb_rps, 2)})
    finally:
        server.stop()


if __name__ == "__main__":
    main()
