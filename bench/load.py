"""Load: concurrent writers and readers against real ``engram serve`` processes, then an audit.

    python bench/load.py                               # SQLite, one server, 8 writers + 8 readers, 60 s
    python bench/load.py --backend postgresql          # two servers sharing one PostgreSQL
    python bench/load.py --duration 8 --step-seconds 0 # quick: no concurrency sweep

Writers POST single notes, each with a unique marker in its text; readers alternate a search in a
writer's scope and a GET of a note acknowledged earlier (through another server when there are
two, so a read crosses processes). Every request is timed from the client. Afterwards the
tenant's database is read directly: every acknowledged note must be there exactly once, under
its acknowledged id (0 lost, 0 duplicated), and no request may have failed (0 errors).

Then a closed-loop sweep over client counts (half writers, half readers, ``--step-seconds``
each) finds the load held: the highest requests/s of a step whose p95 of every operation is
≤ ``--p95-ms``. Prints JSON lines with ``os.getloadavg()``: figures measured while other work
shares the machine are noisy.
"""
from __future__ import annotations

import os

for _key, _value in {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                     "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_key, _value)  # before torch is imported (see README)

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import quote  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.settings import Settings  # noqa: E402
from bench import synthetic  # noqa: E402
from bench.served import Server  # noqa: E402
from memory.accounts import AccountStore, open_accounts_engine  # noqa: E402
from memory.database import postgres_driver_url  # noqa: E402

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
USERS = 8
SERVER_ENV = {"ENGRAM_LLM": "none", "ENGRAM_MAX_TOP_K": "1000"}
MARKER = re.compile(r"\[load-([0-9a-f]+)-w(\d+)-(\d+)\]")


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


# ---- the deployment under test ---------------------------------------------------------------


@dataclass
class Deployment:
    """Servers of one tenant and where its notes live (to audit them directly)."""

    servers: list[Server]
    key: str
    tenant_db_url: str
    cleanup: list[str] = field(default_factory=list)  # PostgreSQL schemas to drop
    pg_url: str = DEFAULT_POSTGRES_URL

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]


def start(backend: str, tmp: Path, job_workers: int, extra_env: dict[str, str] | None = None,
          pg_url: str = DEFAULT_POSTGRES_URL) -> Deployment:
    """One server on a SQLite data dir, or two servers (own data dirs) on one PostgreSQL."""
    tenant = f"load{uuid.uuid4().hex[:8]}"
    for path in (tmp / "a", tmp / "b"):
        path.mkdir(exist_ok=True)
    if backend == "sqlite":
        settings = Settings(data_dir=tmp / "a")
        key = _make_tenant(settings, tenant)
        servers = [Server(tmp / "a", job_workers, None, {**SERVER_ENV, **(extra_env or {})})]
        deployment = Deployment(servers, key, f"sqlite:///{settings.tenant_dir(tenant) / 'engram.db'}")
    else:
        control = f"load_ctl_{uuid.uuid4().hex[:8]}"
        _pg_admin(pg_url, f'CREATE SCHEMA "{control}"')
        url = f"{pg_url}?options={quote(f'-csearch_path={control}')}"
        key = _make_tenant(Settings(data_dir=tmp / "a", database_url=url), tenant)
        servers = [Server(tmp / name, job_workers, url, {**SERVER_ENV, **(extra_env or {})}) for name in ("a", "b")]
        tenant_url = f"{pg_url}?options={quote(f'-csearch_path=tenant_{tenant}')}"
        deployment = Deployment(servers, key, tenant_url, [control, f"tenant_{tenant}"], pg_url)
    for server in deployment.servers:
        server.wait_ready()
    return deployment


def stop(deployment: Deployment) -> None:
    for server in deployment.servers:
        server.stop()
    for schema in deployment.cleanup:
        _pg_admin(deployment.pg_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _make_tenant(settings: Settings, tenant: str) -> str:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    accounts = AccountStore(open_accounts_engine(settings.control_url()))
    accounts.create_tenant(tenant)
    _, key = accounts.create_key(tenant, "load")
    accounts.close()
    return key


def _pg_admin(pg_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(sql)


# ---- the load --------------------------------------------------------------------------------


class Recorder:
    """Latencies and errors per operation, and the writers' acknowledgements (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.acked: dict[str, str] = {}  # marker -> note id
        self.acked_ids: list[str] = []

    def timing(self, op: str, seconds: float) -> None:
        with self.lock:
            self.latency[op].append(seconds)

    def error(self, op: str, what: str) -> None:
        with self.lock:
            self.errors[op] += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{op}: {what[:300]}")

    def ack(self, marker: str, note_id: str) -> None:
        with self.lock:
            self.acked[marker] = note_id
            self.acked_ids.append(note_id)

    def some_acked(self, rng: random.Random) -> str | None:
        with self.lock:
            return rng.choice(self.acked_ids) if self.acked_ids else None


def _call(rec: Recorder, op: str, send: Any) -> httpx.Response | None:
    start = time.perf_counter()
    try:
        response = send()
    except httpx.HTTPError as exc:
        rec.error(op, f"{exc.__class__.__name__}: {exc}")
        return None
    rec.timing(op, time.perf_counter() - start)
    if response.status_code >= 400:
        rec.error(op, f"{response.status_code} {response.text}")
        return None
    return response


def writer(rec: Recorder, client: httpx.Client, run: str, w: int, until: float, texts: list[str]) -> None:
    seq = 0
    while time.monotonic() < until:
        marker = f"[load-{run}-w{w}-{seq}]"
        body = {"content": f"{marker} {texts[(w * 7919 + seq) % len(texts)]}", "user_id": f"u{w % USERS}"}
        response = _call(rec, "add", lambda: client.post("/v1/memories", json=body))
        if response is not None:
            rec.ack(marker, response.json()["results"][0]["id"])
        seq += 1


def reader(rec: Recorder, client: httpx.Client, r: int, until: float, queries: list[str]) -> None:
    rng = random.Random(r)
    i = 0
    while time.monotonic() < until:
        note_id = rec.some_acked(rng) if i % 2 else None
        if note_id is None:
            body = {"query": queries[(r * 31 + i) % len(queries)], "user_id": f"u{rng.randrange(USERS)}",
                    "top_k": 10, "include_facts": False}
            _call(rec, "search", lambda: client.post("/v1/search", json=body))
        else:
            _call(rec, "get", lambda: client.get(f"/v1/memories/{note_id}"))
        i += 1


def run_load(deployment: Deployment, writers: int, readers: int, seconds: float, rec: Recorder) -> float:
    """``writers`` + ``readers`` threads for ``seconds``, each with its own connection; writer i
    uses server i, reader i the next one (crossing processes when there are two). Returns the
    wall time."""
    run = uuid.uuid4().hex[:8]
    texts, queries = synthetic.notes(5000, seed=3), synthetic.questions(500, seed=4)
    urls = deployment.urls
    headers = {"Authorization": f"Bearer {deployment.key}"}
    clients = [httpx.Client(base_url=urls[i % len(urls)], headers=headers, timeout=60) for i in range(writers)]
    clients += [httpx.Client(base_url=urls[(i + 1) % len(urls)], headers=headers, timeout=60) for i in range(readers)]
    start = time.monotonic()
    until = start + seconds
    threads = [threading.Thread(target=writer, args=(rec, clients[w], run, w, until, texts)) for w in range(writers)]
    threads += [threading.Thread(target=reader, args=(rec, clients[writers + r], r, until, queries))
                for r in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    for c in clients:
        c.close()
    return wall


def seed(deployment: Deployment, notes: int) -> None:
    """Notes to search among before the clock starts, in batches of chat turns."""
    texts = synthetic.notes(notes, seed=5)
    with httpx.Client(base_url=deployment.urls[0], headers={"Authorization": f"Bearer {deployment.key}"},
                      timeout=300) as client:
        for start in range(0, notes, 200):
            chunk = texts[start : start + 200]
            body = {"messages": [{"role": "user", "content": t} for t in chunk], "user_id": f"u{start // 200 % USERS}"}
            client.post("/v1/memories", json=body).raise_for_status()


# ---- figures and the audit -------------------------------------------------------------------


def op_figures(rec: Recorder, wall: float) -> dict[str, dict[str, float]]:
    out = {}
    for op, samples in sorted(rec.latency.items()):
        arr = np.array(samples) * 1000
        out[op] = {"n": len(samples), "p50_ms": round(float(np.percentile(arr, 50)), 1),
                   "p95_ms": round(float(np.percentile(arr, 95)), 1), "max_ms": round(float(arr.max()), 1),
                   "rps": round(len(samples) / wall, 1)}
    return out


def audit(deployment: Deployment, rec: Recorder) -> dict[str, int]:
    """Read the tenant's notes straight from its database: each acknowledged marker exactly once,
    under the id its 201 named."""
    url = deployment.tenant_db_url
    engine = create_engine(url if url.startswith("sqlite") else postgres_driver_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, content FROM notes WHERE content LIKE '[load-%'")).all()
    finally:
        engine.dispose()
    found: dict[str, list[str]] = defaultdict(list)
    for note_id, content in rows:
        match = MARKER.match(content)
        if match:
            found[match.group(0)].append(note_id)
    lost = [m for m in rec.acked if m not in found]
    duplicated = [m for m, ids in found.items() if len(ids) > 1]
    wrong_id = [m for m, nid in rec.acked.items() if m in found and found[m] != [nid]]
    return {"acked": len(rec.acked), "stored": len(rows), "lost": len(lost), "duplicated": len(duplicated),
            "wrong_id": len(wrong_id), "stored_unacked": len(set(found) - set(rec.acked))}


def load_summary(deployment: Deployment, backend: str, writers: int, readers: int, seconds: float) -> dict[str, Any]:
    rec = Recorder()
    wall = run_load(deployment, writers, readers, seconds, rec)
    figures = op_figures(rec, wall)
    total = sum(f["n"] for f in figures.values())
    return {"bench": "load", "backend": backend, "servers": len(deployment.servers), "writers": writers,
            "readers": readers, "duration_s": round(wall, 1), "requests": total, "rps": round(total / wall, 1),
            "ops": figures, "errors": sum(rec.errors.values()), "errors_by_op": dict(rec.errors),
            "error_samples": rec.error_samples, **audit(deployment, rec),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def sweep(deployment: Deployment, backend: str, steps: list[int], seconds: float, p95_ms: float) -> dict[str, Any]:
    """Closed loop at each client count (half writers, half readers): the highest requests/s of a
    step whose every operation kept p95 ≤ ``p95_ms``."""
    held: dict[str, Any] = {"bench": "load_held", "backend": backend, "p95_limit_ms": p95_ms, "clients": None, "rps": 0.0}
    for clients in steps:
        rec = Recorder()
        wall = run_load(deployment, max(clients // 2, 1), max(clients - clients // 2, 1), seconds, rec)
        figures = op_figures(rec, wall)
        rps = sum(f["n"] for f in figures.values()) / wall
        worst = max(f["p95_ms"] for f in figures.values())
        ok = worst <= p95_ms and not rec.errors
        emit({"bench": "load_step", "backend": backend, "clients": clients, "rps": round(rps, 1), "worst_p95_ms": worst,
              "p95_ms": {op: f["p95_ms"] for op, f in figures.items()}, "errors": sum(rec.errors.values()),
              "held": ok, "loadavg": [round(x, 2) for x in os.getloadavg()]})
        if ok and rps > held["rps"]:
            held.update(clients=clients, rps=round(rps, 1), worst_p95_ms=worst)
    return held


def run(backend: str, duration: float, writers: int = 8, readers: int = 8, seed_notes: int = 1000,
        steps: list[int] | None = None, step_seconds: float = 0.0, p95_ms: float = 200.0,
        job_workers: int = 1, pg_url: str = DEFAULT_POSTGRES_URL) -> dict[str, Any]:
    """Start the deployment, seed it, run the load and (optionally) the sweep; returns the load line."""
    with tempfile.TemporaryDirectory() as tmp:
        deployment = start(backend, Path(tmp), job_workers, pg_url=pg_url)
        try:
            seed(deployment, seed_notes)
            summary = load_summary(deployment, backend, writers, readers, duration)
            emit(summary)
            if steps and step_seconds > 0:
                emit(sweep(deployment, backend, steps, step_seconds, p95_ms))
        finally:
            stop(deployment)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of the 8+8 load")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("--seed-notes", type=int, default=1000)
    ap.add_argument("--steps", default="2,4,8,16,32", help="client counts of the sweep")
    ap.add_argument("--step-seconds", type=float, default=10.0, help="0 skips the sweep")
    ap.add_argument("--p95-ms", type=float, default=200.0)
    ap.add_argument("--job-workers", type=int, default=1, help="graph job threads per server")
    ap.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="a database the bench may add schemas to")
    args = ap.parse_args()
    summary = run(args.backend, args.duration, args.writers, args.readers, args.seed_notes,
                  [int(s) for s in args.steps.split(",")], args.step_seconds, args.p95_ms, args.job_workers,
                  args.postgres_url)
    if summary["errors"] or summary["lost"] or summary["duplicated"] or summary["wrong_id"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
