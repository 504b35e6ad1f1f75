"""Linking from 8-bit codes (retrieval/link_scan.py) stores the links and evolutions that linking
from the float vectors stores: two Engram instances ingest the same real chat turns, one with
``link_codes`` off."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from api import Engram
from api.config import EngramConfig
from retrieval.vector_index import VectorConfig
from tests.helpers import SHARED_DATA


def _turns(users: int, per_user: int) -> list[dict]:
    with gzip.open(SHARED_DATA / "longmemeval_s_dev.json.gz", "rt") as fh:
        haystacks = json.load(fh)[:users]
    per_scope = []
    for u, h in enumerate(haystacks):
        turns = [t["content"][:400] for session in h["haystack_sessions"] for t in session if t["role"] == "user"]
        per_scope.append([{"content": c, "user_id": f"u{u}", "session_id": f"s{i // 20}"}
                          for i, c in enumerate(turns[:per_user])])
    # interleave the users, as a service's stream would: each batch then holds several scopes
    return [scope[i] for i in range(per_user) for scope in per_scope if i < len(scope)]


def _ingest(path: Path, embedder, clock, link_codes: bool) -> tuple[Engram, list]:  # noqa: ANN001
    mem = Engram(path, embedder=embedder, clock=clock, workers=0,
                 config=EngramConfig(vectors=VectorConfig(link_codes=link_codes)))
    return mem, mem.add_many(_turns(3, 250), batch_size=64)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_links_and_evolutions_from_codes_match_the_float_scan(tmp_path: Path, embedder, clock) -> None:  # noqa: ANN001
    coded, coded_notes = _ingest(tmp_path / "coded.db", embedder, clock, True)
    floats, float_notes = _ingest(tmp_path / "floats.db", embedder, clock, False)
    try:
        assert coded.index.vectors._scan is not None and floats.index.vectors._scan is None
        position = {n.id: i for i, n in enumerate(coded_notes)} | {n.id: i for i, n in enumerate(float_notes)}

        def shape(mem: Engram, notes: list) -> list:  # noqa: ANN001
            out = []
            for note in notes:
                links = sorted((position[lk.target_id], lk.kind, lk.weight) for lk in mem.links(note.id)
                               if lk.source_id == note.id)
                stored = mem.get(note.id)
                out.append((links, stored.keywords, stored.tags))
            return out

        got, want = shape(coded, coded_notes), shape(floats, float_notes)
        assert sum(len(links) for links, _, _ in want) > 500  # linking had work to do
        evolved = sum(1 for n in float_notes for h in floats.history(n.id) if h.action == "evolve")
        assert evolved > 20  # and evolutions
        # weights are the similarities, stored rounded: a kernel's last float bit can move the rounding
        assert [[(t, k) for t, k, _ in links] + [kw, tags] for links, kw, tags in got] == \
            [[(t, k) for t, k, _ in links] + [kw, tags] for links, kw, tags in want]
        weights = [(w, v) for (a, _, _), (b, _, _) in zip(got, want, strict=True) for (_, _, w), (_, _, v) in zip(a, b)]
        assert max(abs(w - v) for w, v in weights) <= 1e-4
    finally:
        coded.close()
        floats.close()
