"""``engram serve`` in a subprocess for the HTTP benches: a free loopback port, readiness by
/readyz, the server's log in a file beside its data. Usage::

    server = Server(data_dir, job_workers=1, env={"ENGRAM_LLM": "none"}); server.wait_ready(); ...; server.stop()
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``engram serve`` on ``data_dir`` (and ``database_url`` when given), with ``env`` on top of
    the bench defaults."""

    def __init__(self, data_dir: Path, job_workers: int, database_url: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "ENGRAM_DATA_DIR": str(data_dir), "ENGRAM_JOB_WORKERS": str(job_workers),
                    "ENGRAM_KEY_CACHE_SECONDS": "60"}
        if database_url:
            full_env["ENGRAM_DATABASE_URL"] = database_url
        full_env.update(env or {})
        self.log = open(data_dir / f"server-{self.port}.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)], cwd=ROOT,
                                     env=full_env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError("server did not get ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=300)  # serve gives its engram worker up to 120 s to finish a job
        self.log.close()
