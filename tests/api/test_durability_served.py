"""Durability through the REST service: ``engram serve`` killed with SIGKILL while clients add notes.

Four clients POST notes to server A and count a note only once its 201 arrived. A is then killed.
On SQLite a new server starts on the same data directory; on PostgreSQL the second server B,
which shared the database all along, carries on alone (its worker takes over A's leased jobs).
Either way: every acknowledged note is there exactly once and readable, search finds it, at most
the requests in flight were stored without an answer, and every graph job ends done.
"""
from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from bench.load import SERVER_ENV, Recorder, audit, start, stop
from bench.served import Server
from tests.helpers import POSTGRES_URL

CLIENTS = 4
ACKS = 16
LEASE = {"ENGRAM_JOB_LEASE_SECONDS": "2"}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_serve_killed_mid_ingest(kind, tmp_path):
    deployment = start(kind, tmp_path, job_workers=1, extra_env=LEASE, pg_url=POSTGRES_URL)
    try:
        rec = _ingest_until_killed(deployment.servers[0], deployment.key)
        if kind == "sqlite":
            deployment.servers[0] = Server(tmp_path / "a", 1, None, {**SERVER_ENV, **LEASE})  # same data dir
            deployment.servers[0].wait_ready()
            survivor = deployment.servers[0]
        else:
            survivor = deployment.servers.pop(1)
            deployment.servers = [survivor]  # A is dead; stop() must not wait for it
        found = audit(deployment, rec)
        assert found["lost"] == found["duplicated"] == found["wrong_id"] == 0
        assert found["stored_unacked"] <= CLIENTS  # only requests in flight at the kill
        with httpx.Client(base_url=survivor.url, headers={"Authorization": f"Bearer {deployment.key}"},
                          timeout=30) as client:
            for marker, note_id in rec.acked.items():
                got = client.get(f"/v1/memories/{note_id}")
                assert got.status_code == 200 and got.json()["content"].startswith(marker)
            _assert_searchable(client, rec)
            _assert_jobs_finish(client, found["stored"])
    finally:
        stop(deployment)


def _ingest_until_killed(server: Server, key: str) -> Recorder:
    rec = Recorder()
    dead = threading.Event()

    def write(c: int) -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            seq = 0
            while not dead.is_set():
                marker = f"[load-0-w{c}-{seq}]"
                try:
                    r = client.post("/v1/memories", json={"content": f"{marker} note {seq} of client {c} about "
                                                          f"topic{c}x{seq}", "user_id": f"u{c}"})
                except httpx.TransportError:
                    return  # the server is gone: this request was never acknowledged
                if r.status_code != 201:
                    rec.error("add", f"{r.status_code} {r.text}")
                    return
                rec.ack(marker, r.json()["results"][0]["id"])
                seq += 1

    threads = [threading.Thread(target=write, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 40
    while len(rec.acked) < ACKS and time.monotonic() < deadline:
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGKILL)
    assert server.proc.wait(timeout=10) == -signal.SIGKILL
    dead.set()
    for t in threads:
        t.join(timeout=30)
    server.log.close()
    assert len(rec.acked) >= ACKS and not rec.errors, rec.error_samples
    return rec


def _assert_searchable(client: httpx.Client, rec: Recorder) -> None:
    """Each acknowledged note is found by its own distinctive term (the survivor's index caught up
    from SQL, or, on PostgreSQL, followed the change feed)."""
    deadline = time.monotonic() + 15
    for marker, note_id in rec.acked.items():
        c, seq = marker.split("-w")[1].rstrip("]").split("-")
        body = {"query": f"topic{c}x{seq}", "user_id": f"u{c}", "top_k": 3, "include_facts": False}
        while True:
            hits = [h["id"] for h in client.post("/v1/search", json=body).json()["results"]]
            if note_id in hits or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # the feed's delay, on PostgreSQL
        assert note_id in hits, marker


def _assert_jobs_finish(client: httpx.Client, notes: int) -> None:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        pending = [client.get("/v1/jobs", params={"state": s, "limit": 1}).json() for s in ("queued", "running")]
        if not any(pending):
            break
        time.sleep(0.2)
    assert client.get("/v1/jobs", params={"state": "failed", "limit": 10}).json() == []
    assert len(client.get("/v1/jobs", params={"state": "done", "limit": 1000}).json()) == notes
