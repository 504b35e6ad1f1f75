"""The ``engram`` command, run as a real subprocess on a real database."""
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


def _engram(*args: str, db, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "api.cli", "--db", str(db), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300, check=check)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "cli.db"
    turns = tmp_path_factory.mktemp("in") / "turns.jsonl"
    turns.write_text("\n".join(json.dumps(r) for r in [
        {"role": "user", "content": "I moved to Porto in March.", "timestamp": "2026-03-02T10:00:00Z"},
        {"role": "assistant", "content": "Porto is lovely; try the francesinha.", "timestamp": "2026-03-02T10:01:00Z"},
        {"role": "user", "content": "My cat Luna hates the rain.", "timestamp": "2026-04-10T08:00:00Z"},
    ]) + "\n")
    out = _engram("ingest", str(turns), "--user-id", "ann", db=path)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"ingested": 3, "file": str(turns)}
    return path


def test_search_prints_json_lines_with_scores(db):
    out = _engram("search", "which city did I move to", "--user-id", "ann", "--top-k", "2", "--now", "2026-05-01", db=db)
    hits = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(hits) == 2 and "Porto" in hits[0]["content"]
    assert {"id", "score", "retention", "dense", "bm25", "event_time"} <= set(hits[0])


def test_add_show_history_consolidate_stats(db):
    note = json.loads(_engram("add", "Luna is a grey tabby", "--user-id", "ann", db=db).stdout)
    shown = json.loads(_engram("show", note["id"], db=db).stdout)
    assert shown["content"] == "Luna is a grey tabby" and shown["recall_count"] == 1
    history = [json.loads(line) for line in _engram("history", note["id"], db=db).stdout.splitlines()]
    assert history[0]["action"] == "add"
    cons = json.loads(_engram("consolidate", "--user-id", "ann", "--now", "2030-01-01", db=db).stdout)
    assert cons["archived"] == 4
    stats = json.loads(_engram("stats", db=db).stdout)
    assert stats["archived"] == 4 and stats["notes"] == 0
    restored = json.loads(_engram("restore", note["id"], db=db).stdout)
    assert restored == {"restored": [note["id"]]}


def test_bad_input_exits_2_with_json_error(db):
    out = _engram("search", "x", db=db, check=False)
    assert out.returncode == 2 and json.loads(out.stderr)["error"] == "scope_required"
    out = _engram("show", "no-such-id", db=db, check=False)
    assert out.returncode == 1 and json.loads(out.stderr)["error"] == "not_found"


def test_demo_runs_end_to_end(tmp_path):
    out = subprocess.run([sys.executable, "-m", "api.cli", "demo", "--out", str(tmp_path)], capture_output=True,
                         text=True, env=ENV, cwd=ROOT, timeout=300, check=True)
    assert "Ingested 30 turns" in out.stdout
    assert "pescatarian" in out.stdout and "--related" in out.stdout and "archived" in out.stdout
