"""``engram serve``'s child ``engram worker`` process: started with the server, restarted when it
dies, stopped cleanly (SIGTERM: jobs in hand finish) when the server stops.

The child is told the server's pid and exits on its own if the server vanishes without stopping
it (SIGKILL), so no orphan keeps claiming jobs. Usage::

    sup = WorkerSupervisor(env, nice=10); sup.start(); ...; sup.stop()
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping

log = logging.getLogger("engram.serve")


class WorkerSupervisor:
    """Keeps one ``python -m api.cli worker`` running until ``stop``."""

    def __init__(self, env: Mapping[str, str], nice: int = 10, grace_s: float = 120.0, restart_s: float = 1.0) -> None:
        self._env = dict(env)
        self._nice = nice
        self._grace_s = grace_s  # an LLM job in hand may take this long to finish
        self._restart_s = restart_s
        self._stopping = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        self._proc = self._spawn()
        self._thread = threading.Thread(target=self._watch, name="engram-worker-supervisor", daemon=True)
        self._thread.start()

    def signal_stop(self) -> None:
        """Ask the worker to stop (SIGTERM) without waiting; ``stop`` waits. Signal-handler safe."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM the worker and wait for its jobs in hand; SIGKILL after the grace period (the
        leases of its jobs then run out and another worker takes them)."""
        self.signal_stop()
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(timeout=self._grace_s)
            except subprocess.TimeoutExpired:
                log.warning("engram worker %s did not stop in %.0f s; killing it", proc.pid, self._grace_s)
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _spawn(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "api.cli", "worker", "--parent-pid", str(os.getpid()), "--nice", str(self._nice)]
        proc = subprocess.Popen(cmd, env=self._env)  # its log lines go to the server's stdout/stderr
        log.info("engram worker started (pid %s)", proc.pid)
        return proc

    def _watch(self) -> None:
        while not self._stopping.is_set():
            assert self._proc is not None
            code = self._proc.wait()
            if self._stopping.wait(self._restart_s):
                return
            log.error("engram worker (pid %s) exited with %s; restarting it", self._proc.pid, code)
            self.restarts += 1
            self._proc = self._spawn()
