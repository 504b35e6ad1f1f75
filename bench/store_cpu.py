"""The store's CPU per note at 100k notes, MiniLM taken out: what ingest costs beyond embedding.

    python bench/store_cpu.py                          # 100k notes, 5,376 added, 3 rounds
    python bench/store_cpu.py --batch 256 512          # two add_many batch sizes, alternated
    python bench/store_cpu.py --base /tmp/sc/base      # keep the base database for another run

Issue 2's ingest overhead, once both cores are busy, is the store's share of the CPU per note:
store / (embed + store). bench/search_latency.py measures the whole, where the VM's drift in the
embedder's speed hides changes of a few percent in the store. This measures the store alone:
MiniLM embeds each distinct text once, up front; a lookup embedder then hands ``add_many`` those
vectors, so the process's CPU clock counts drafting, linking, SQL and the indexes. A base database
of ``--size`` notes is built once; each round copies it and adds the same ``--add`` notes to the
copy, the first batch as warm-up, so every configuration meets identical files, alternated round
by round. With ``--base`` the base database (and the vectors) are kept and reused, so that two
checkouts of the code can be compared on the same files.

Prints one JSON line per (configuration, round) and one summary line per configuration: CPU ms per
note (all threads, user and system), of which system, wall ms per note, read and write system calls
per note.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see README)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.engram import ADD_BATCH, Engram  # noqa: E402
from bench import synthetic  # noqa: E402
from bench.search_latency import records  # noqa: E402

DB = "bench.db"


class LookupEmbedder:
    """MiniLM's vectors for a fixed set of texts, computed once: embedding costs a dict lookup."""

    def __init__(self, model_id: str, texts: list[str], vectors: np.ndarray) -> None:
        self.model_id = model_id
        self.dim = int(vectors.shape[1])
        self._row = {t: i for i, t in enumerate(texts)}
        self._vectors = vectors

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._vectors[[self._row[t] for t in texts]]


def lookup_embedder(texts: list[str], base: Path) -> LookupEmbedder:
    """Vectors of the distinct ``texts`` (synthetic text repeats: ~35k distinct in 105k), embedded
    by MiniLM once and kept in ``base`` (reused by any later run whose texts they cover)."""
    from retrieval.embedder import MiniLMEmbedder  # only here: a reused base never loads torch

    distinct = sorted(set(texts))
    for cached in sorted(base.glob("vectors-*.npy")):
        known = json.loads(cached.with_suffix(".json").read_text())
        if set(distinct) <= set(known):
            return LookupEmbedder(MiniLMEmbedder.model_id, known, np.load(cached))
    embedder = MiniLMEmbedder()
    vectors = np.concatenate([embedder.embed(distinct[i : i + 512]) for i in range(0, len(distinct), 512)])
    np.save(base / f"vectors-{len(distinct)}.npy", vectors)
    (base / f"vectors-{len(distinct)}.json").write_text(json.dumps(distinct))
    return LookupEmbedder(embedder.model_id, distinct, vectors)


def build_base(base: Path, embedder: LookupEmbedder, texts: list[str], size: int) -> None:
    marker = base / "built.json"
    if marker.exists() and json.loads(marker.read_text()).get("size") == size:
        return
    for stale in base.glob(f"{DB}*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    start = time.perf_counter()
    with Engram(base / DB, embedder=embedder, workers=0) as mem:
        for lo in range(0, size, 10_000):
            mem.add_many(records(texts[lo : min(size, lo + 10_000)], lo))
    marker.write_text(json.dumps({"size": size, "build_s": round(time.perf_counter() - start, 1)}))


def io_calls() -> tuple[int, int]:
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["syscr"]), int(fields["syscw"])


def one_round(base: Path, embedder: LookupEmbedder, texts: list[str], size: int, add: int, batch: int) -> dict:
    """Add ``texts[size:size+add]`` to a copy of the base database in ``batch``-note calls; the
    first batch warms the caches and is not counted."""
    with tempfile.TemporaryDirectory(dir=base.parent) as tmp:
        copy = Path(tmp)
        for item in base.glob(f"{DB}*"):
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, copy / item.name)
        with Engram(copy / DB, embedder=embedder, workers=0) as mem:
            mem.add_many(records(texts[size : size + batch], size), batch_size=batch)
            counted = records(texts[size + batch : size + add], size + batch)
            before, wall, (r0, w0) = os.times(), time.perf_counter(), io_calls()
            mem.add_many(counted, batch_size=batch)
            after, wall = os.times(), time.perf_counter() - wall
            r1, w1 = io_calls()
    n = len(counted)
    user, system = after.user - before.user, after.system - before.system
    return {"cpu_ms_note": round((user + system) * 1000 / n, 4), "sys_ms_note": round(system * 1000 / n, 4),
            "wall_ms_note": round(wall * 1000 / n, 4), "reads_note": round((r1 - r0) / n, 2),
            "writes_note": round((w1 - w0) / n, 2), "notes": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000, help="notes in the base database")
    ap.add_argument("--add", type=int, default=5_376, help="notes added each round, the first batch as warm-up")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, nargs="+", default=[ADD_BATCH], help="add_many batch sizes to compare")
    ap.add_argument("--base", type=Path, default=None, help="folder to keep (and reuse) the base database in")
    args = ap.parse_args()
    if args.size < 1 or args.add <= max(args.batch) or args.rounds < 1 or min(args.batch) < 1:
        ap.error("need --size >= 1, --rounds >= 1, batch >= 1 and --add larger than the largest batch")
    with tempfile.TemporaryDirectory() as tmp:
        base = args.base or Path(tmp) / "base"
        base.mkdir(parents=True, exist_ok=True)
        texts = synthetic.notes(args.size + args.add)
        embedder = lookup_embedder(texts, base)
        build_base(base, embedder, texts, args.size)
        results: dict[int, list[dict]] = {b: [] for b in args.batch}
        for r in range(args.rounds):
            for batch in args.batch:
                row = one_round(base, embedder, texts, args.size, args.add, batch)
                results[batch].append(row)
                print(json.dumps({"size": args.size, "batch": batch, "round": r + 1, **row}), flush=True)
        for batch, rows in results.items():
            cpu = [row["cpu_ms_note"] for row in rows]
            print(json.dumps({"size": args.size, "batch": batch, "summary": True, "rounds": len(rows),
                              "cpu_ms_note_median": round(statistics.median(cpu), 4),
                              "cpu_ms_note_min": min(cpu), "cpu_ms_note_max": max(cpu),
                              "writes_note_median": statistics.median(row["writes_note"] for row in rows),
                              "reads_note_median": statistics.median(row["reads_note"] for row in rows)}), flush=True)


if __name__ == "__main__":
    main()
