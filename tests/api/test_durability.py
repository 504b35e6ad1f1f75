"""Durability: a writer process killed with SIGKILL mid-ingest loses nothing it acknowledged, shows
nothing half-written, and its derived index and job queue recover — on SQLite and on PostgreSQL.

The writer (tests/api/durability_writer.py) acknowledges each ``add`` only after it returned, saves
its index every few calls and runs a job worker that claims graph jobs in batches. It is killed
once it has acknowledged ``ACKS`` calls while some job is ``running`` under its lease.

"Half-written", for this schema, is any trace of a note's insert transaction without the rest of
it: a note row without its ``add`` history row, its change-feed row or its graph job; or a
history/change/job row, or a link, naming a note that is not there (the writer deletes nothing);
or a derived index that holds a note SQL lacks, or lacks one SQL holds.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text

from api.engram import Engram
from memory.database import open_engine
from memory.types import Scope
from tests.api.durability_writer import config
from tests.helpers import ROOT

ACKS = 14  # acknowledged calls before the kill (every fourth call adds a batch of 4 notes)
LEASE_S = 2.0
QUERIES = ["trip to Lisbon with my sister", "bought a road bike", "learning Spanish", "repair shop", "rent is lower"]


def test_sigkill_mid_ingest_loses_nothing_acknowledged(database_url, tmp_path, embedder):
    index_dir = tmp_path / "engram.index"
    acked, running_at_kill = _run_and_kill(database_url, index_dir, tmp_path / "acks.txt")
    assert running_at_kill > 0, "the kill should have left claimed jobs behind"

    with Engram(database_url=database_url, index_dir=index_dir, embedder=embedder, config=config(LEASE_S),
                workers=0) as mem:
        notes = _note_ids(mem.store.engine)
        assert acked <= notes, f"lost acknowledged notes: {sorted(acked - notes)[:5]}"
        assert len(notes - acked) <= 4, "only the call in flight may be committed but unacknowledged"
        _assert_nothing_half_written(mem.store.engine, notes)
        # The writer saved its index every few calls: the newest whole save loads and catches up
        # from the change feed (a save the kill tore is skipped by its checksums).
        assert mem.index_status in ("loaded", "caught_up")
        assert set(mem.index.catalog.row_of) == notes
        recovered = _rankings(mem, embedder)

    with Engram(database_url=database_url, index_dir=tmp_path / "fresh.index", embedder=embedder,
                config=config(LEASE_S), workers=0) as fresh:
        assert fresh.index_status == "rebuilt"
        assert _rankings(fresh, embedder) == recovered

    # A new process with a worker resumes the queue: the dead worker's leases run out, its jobs
    # are taken over, and every note's graph job completes.
    with Engram(database_url=database_url, index_dir=index_dir, embedder=embedder, config=config(LEASE_S),
                workers=1) as resumed:
        assert resumed.wait_for_jobs(timeout=40)
        counts = resumed.job_store.counts()
        assert counts["failed"] == 0 and counts["done"] == len(notes)
        assert _ids(resumed.store.engine, "SELECT DISTINCT note_id FROM graph_episodes") == notes


def _run_and_kill(database_url: str, index_dir: Path, acks: Path) -> tuple[set[str], int]:
    """Start the writer, kill it with SIGKILL mid-ingest; the acknowledged ids and how many jobs
    the kill left ``running``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.api.durability_writer", "--database-url", database_url,
                             "--index-dir", str(index_dir), "--acks", str(acks), "--lease-s", str(LEASE_S)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watcher: Engine | None = None
    try:
        deadline = time.monotonic() + 45
        while True:
            assert proc.poll() is None, f"writer died: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "writer too slow"
            if len(_whole_lines(acks)) >= ACKS:
                # Freeze the writer, then look: what a frozen process left is what the kill leaves.
                # (Checking first and killing after let the worker finish its claimed batch in
                # between, and the kill found no job running.)
                proc.send_signal(signal.SIGSTOP)
                time.sleep(0.05)  # statements the writer had already sent reach the database
                watcher = watcher or open_engine(database_url, durable=False)
                if _running(watcher) > 0:
                    break
                proc.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        return {i for line in _whole_lines(acks) for i in line.split()}, _running(watcher)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if watcher is not None:
            watcher.dispose()


def _whole_lines(path: Path) -> list[str]:
    """Acknowledgements the writer finished writing (a kill may cut the last line short)."""
    if not path.exists():
        return []
    data = path.read_text()
    return data[: data.rfind("\n") + 1].splitlines()


def _running(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM jobs WHERE state = 'running'")).scalar_one()


def _ids(engine: Engine, sql: str) -> set[str]:
    with engine.connect() as conn:
        return {row[0] for row in conn.execute(text(sql))}


def _note_ids(engine: Engine) -> set[str]:
    return _ids(engine, "SELECT id FROM notes")


def _assert_nothing_half_written(engine: Engine, notes: set[str]) -> None:
    with engine.connect() as conn:
        adds = dict(conn.execute(text("SELECT note_id, count(*) FROM history WHERE action = 'add' GROUP BY note_id")).all())
        graph_jobs = dict(conn.execute(text("SELECT note_id, count(*) FROM jobs WHERE kind = 'graph' GROUP BY note_id")).all())
        changed = {r[0] for r in conn.execute(text("SELECT DISTINCT note_id FROM changes"))}
        linked = {i for r in conn.execute(text("SELECT source_id, target_id FROM links")) for i in r}
    assert adds == dict.fromkeys(notes, 1), "each note has exactly one 'add' history row, and no other note has one"
    assert graph_jobs == dict.fromkeys(notes, 1), "each note has exactly one graph job, and no other note has one"
    assert changed == notes, "the change feed names exactly the stored notes"
    assert linked <= notes


def _rankings(mem: Engram, embedder) -> list[list[tuple[str, float]]]:
    """Each query's top 10 per user, without search's recall side effect, at one fixed time; ties
    ordered by id (rows of a rebuilt index are in id order, not insertion order)."""
    when = datetime(2030, 1, 1, tzinfo=UTC)
    out = []
    for query in QUERIES:
        vec = embedder.embed([query])[0]
        for user in ("u0", "u1", "u2"):
            hits = mem._rank(query, vec, Scope(user), None, 10, when, False)
            out.append(sorted(((h.id, round(h.score, 4)) for h in hits), key=lambda p: (-p[1], p[0])))
    return out

