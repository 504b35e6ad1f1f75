"""Derived indexes: rebuild == incremental, persistence, catch-up from the change feed."""
import hashlib
import json
from datetime import timedelta

import faiss
import numpy as np
import pytest

from api.config import EngramConfig
from api.engram import Engram
from retrieval.vector_index import VectorConfig
from tests.helpers import T0

# The default, where these few notes are searched exactly, and an inverted file from the 6th
# note on, searched through it (a gather limit of 2 rows).
CONFIGS = {"exact": EngramConfig(),
           "ivf": EngramConfig(vectors=VectorConfig(ann_threshold=6, exact_gather_limit=2, ivf_lists=2, ivf_probe=1))}


@pytest.fixture(params=list(CONFIGS))
def config(request):
    return CONFIGS[request.param]

QUERIES = ["dog vaccine", "travel to Lisbon", "marathon training plan", "what did I cook", "sister birthday"]
TEXTS = [
    "Max the beagle got his rabies vaccine.", "We flew to Lisbon for my sister's birthday.",
    "Marathon training plan: three easy runs and a long run.", "I cooked a chickpea curry tonight.",
    "Bought a gift for my sister: a jazz record.", "The vet said Max is healthy.",
    "Booked a hotel in Alfama for the Lisbon trip.", "Long run of 18 km today, knees fine.",
]


def _results(mem: Engram) -> list[list[tuple[str, float]]]:
    out = []
    for q in QUERIES:
        rows, scores = mem.index.vectors.search(mem.embedder.embed([q])[0], 5, mem.index.mask(None, True))
        bm_rows, bm_scores = mem.index.bm25.search(q, 5, mem.index.mask(None, True))
        ids = [mem.index.catalog.note_ids[r] for r in list(rows) + list(bm_rows)]
        out.append(list(zip(ids, np.round(np.concatenate([scores, bm_scores]), 5).tolist(), strict=True)))
    return out


def _churn(mem: Engram) -> None:
    notes = mem.add_many([{"content": t, "user_id": "ann" if i % 2 else "bob", "timestamp": T0 + timedelta(days=i)}
                          for i, t in enumerate(TEXTS)], batch_size=3)
    mem.update(notes[1].id, content="We flew to Porto, not Lisbon, for the birthday.")
    mem.delete(notes[3].id)
    mem.consolidate(user_id="bob", now=T0 + timedelta(days=500))
    mem.restore(notes[0].id)


def test_rebuild_equals_incremental(tmp_path, embedder, clock, config):
    with Engram(tmp_path / "a.db", embedder=embedder, clock=clock, config=config) as mem:
        _churn(mem)
        incremental = _results(mem)
        assert mem.index.vectors.kind == ("ivf" if config is CONFIGS["ivf"] else "exact")
        masks = [mem.index.mask(s, False).sum() for s in (None,)]
    (tmp_path / "a.db.index" / "meta.json").unlink()  # force a rebuild from SQL
    with Engram(tmp_path / "a.db", embedder=embedder, clock=clock, config=config) as again:
        assert again.index_status == "rebuilt"
        assert _results(again) == incremental
        assert [again.index.mask(None, False).sum()] == masks


def test_saved_index_loads_and_catches_up(tmp_path, embedder, clock, config):
    with Engram(tmp_path / "b.db", embedder=embedder, clock=clock, config=config) as mem:
        _churn(mem)
    with Engram(tmp_path / "b.db", embedder=embedder, clock=clock, config=config) as mem:
        assert mem.index_status == "loaded"
        expected_before = _results(mem)
    # A second process writes without saving the index (as if killed): the feed must cover it.
    writer = Engram(tmp_path / "b.db", embedder=embedder, clock=clock, config=config)
    extra = writer.add("Adopted a kitten named Miso.", user_id="ann")[0]
    writer.delete(next(n.id for n in writer.get_all(user_id="ann") if n.id != extra.id))
    writer.store.close()  # no save_index: simulate a crash after the commits
    with Engram(tmp_path / "b.db", embedder=embedder, clock=clock, config=config) as mem:
        assert mem.index_status == "caught_up"
        assert mem.search("kitten", user_id="ann", top_k=1)[0].id == extra.id
        caught = _results(mem)
    (tmp_path / "b.db.index" / "meta.json").unlink()
    with Engram(tmp_path / "b.db", embedder=embedder, clock=clock, config=config) as mem:
        assert _results(mem) == caught
    assert expected_before != caught


def test_torn_index_files_fall_back_to_rebuild(tmp_path, embedder, clock, config):
    with Engram(tmp_path / "c.db", embedder=embedder, clock=clock, config=config) as mem:
        _churn(mem)
        expected = _results(mem)
    for f in (tmp_path / "c.db.index").glob("bm25.*.npz"):
        f.write_bytes(f.read_bytes()[:100])
    with Engram(tmp_path / "c.db", embedder=embedder, clock=clock, config=config) as mem:
        assert mem.index_status == "rebuilt"
        assert _results(mem) == expected


def test_a_load_that_fails_part_way_rebuilds_a_fresh_index(tmp_path, embedder, clock, config):
    """Files whose checksums match but whose row counts disagree with meta.json are read and then
    refused; the rebuild must not add to what was read."""
    with Engram(tmp_path / "e.db", embedder=embedder, clock=clock, config=config) as mem:
        _churn(mem)
        expected = _results(mem)
    meta_path = tmp_path / "e.db.index" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "rows": meta["rows"] + 1}))
    with Engram(tmp_path / "e.db", embedder=embedder, clock=clock, config=config) as mem:
        assert mem.index_status == "rebuilt"
        assert len(mem.index.vectors) == mem.index.catalog.num_rows == len(mem.index)  # no rows left from the load
        assert _results(mem) == expected


def test_an_index_saved_in_format_1_loads(tmp_path, embedder, clock, config):
    """Format 1 kept the vectors in a FAISS file (flat or HNSW); such a folder still loads."""
    with Engram(tmp_path / "d.db", embedder=embedder, clock=clock, config=config) as mem:
        _churn(mem)
        expected = _results(mem)
        vectors = mem.index.vectors.vectors(np.arange(len(mem.index.vectors)))
    folder = tmp_path / "d.db.index"
    meta = json.loads((folder / "meta.json").read_text())
    gen = meta["generation"]
    (folder / f"vectors.{gen}.npz").unlink()
    old = faiss.IndexHNSWFlat(vectors.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    old.add(vectors)
    faiss.write_index(old, str(folder / f"vectors.{gen}.faiss"))
    sums = {name: digest for name, digest in meta["sha256"].items() if not name.startswith("vectors.")}
    sums[f"vectors.{gen}.faiss"] = hashlib.sha256((folder / f"vectors.{gen}.faiss").read_bytes()).hexdigest()
    (folder / "meta.json").write_text(json.dumps({**meta, "format": 1, "sha256": sums}))
    with Engram(tmp_path / "d.db", embedder=embedder, clock=clock, config=config) as mem:
        assert mem.index_status == "loaded"
        assert _results(mem) == expected
    assert json.loads((folder / "meta.json").read_text())["format"] == 2  # saved again in the new format
