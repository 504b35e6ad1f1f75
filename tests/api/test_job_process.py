"""Jobs out of the request process, end to end: ``engram serve`` on 127.0.0.1 starts an ``engram
worker`` child; notes added over HTTP get their graph jobs done by that child (the server opens its
tenants with no job threads), the server's graph walks see the child's writes, a SIGKILLed child
is restarted and loses no job (its leases run out), and stopping the server stops the child with
no job left running."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.client import Client
from bench.served import free_port
from tests.helpers import ROOT

ENV = {"ENGRAM_ADMIN_KEY": "jp-admin", "ENGRAM_KEY_CACHE_SECONDS": "0", "ENGRAM_DURABLE": "false",
       "ENGRAM_LLM": "none", "ENGRAM_JOB_WORKERS": "1", "ENGRAM_JOB_LEASE_SECONDS": "2", "OMP_WAIT_POLICY": "PASSIVE",
       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (each thread lists the children it started)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue  # the thread ended meanwhile
    return sorted(found)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def served(tmp_path):
    env = {**os.environ, **ENV, "ENGRAM_DATA_DIR": str(tmp_path)}
    run = [sys.executable, "-m", "api.cli"]
    key = subprocess.run([*run, "keys", "create", "--tenant", "acme"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout.strip().splitlines()[-1]
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*run, "serve", "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _ready(url, proc, tmp_path), 240, "the server")
        yield url, key, proc, tmp_path
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=180)
        log.close()


def _ready(url: str, proc: subprocess.Popen, tmp_path: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError((tmp_path / "serve.log").read_text())
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _graph_jobs(mem: Client) -> dict[str, int]:
    states: dict[str, int] = {}
    for job in mem.jobs(limit=100):
        if job["kind"] == "graph":
            states[job["state"]] = states.get(job["state"], 0) + 1
    return states


def test_the_worker_process_runs_the_jobs_and_the_server_sees_its_graph(served):
    url, key, proc, _ = served
    (worker,) = _wait(lambda: _children(proc.pid), 30, "the worker child")
    with Client(url, api_key=key) as mem:
        mem.add("I moved to Lisbon in May.", user_id="ann")
        mem.add("My sister Maria lives in Porto.", user_id="ann")
        _wait(lambda: _graph_jobs(mem) == {"done": 2}, 600, "both graph jobs done")  # the worker loads MiniLM first
        assert any("Lisbon" in f["fact"] for f in mem.facts(user_id="ann"))
        # A walk of the server's networkx view: it picked up the worker process's writes.
        near = _wait(lambda: mem.neighbours("ann", user_id="ann"), 10, "the server's graph view to follow")
        assert any("Lisbon" in str(n) for n in near)
    assert _children(proc.pid) == [worker]  # the same child did it (no restart)


def test_a_killed_worker_is_restarted_and_loses_no_job(served):
    url, key, proc, data = served
    (first,) = _wait(lambda: _children(proc.pid), 30, "the worker child")
    with Client(url, api_key=key) as mem:
        for i in range(6):
            mem.add(f"I visited the museum number {i} in Lisbon with Maria.", user_id="ann")
        os.kill(first, signal.SIGKILL)  # whatever it held stays 'running' until its 2 s lease runs out
        second = _wait(lambda: [c for c in _children(proc.pid) if c != first], 60, "a restarted worker")
        assert second
        _wait(lambda: _graph_jobs(mem) == {"done": 6}, 600, "every graph job done")  # a loaded machine is slow


def test_stopping_the_server_stops_the_worker_with_no_job_left_running(served):
    url, key, proc, data = served
    (worker,) = _wait(lambda: _children(proc.pid), 30, "the worker child")
    with Client(url, api_key=key) as mem:
        for i in range(4):
            mem.add(f"Maria moved to city number {i}.", user_id="ann")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=180) == 0
    assert not Path(f"/proc/{worker}").exists() or "zombie" in Path(f"/proc/{worker}/status").read_text()
    with sqlite3.connect(data / "tenants" / "acme" / "engram.db") as db:
        states = dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    assert states.get("running", 0) == 0 and sum(states.values()) == 4
