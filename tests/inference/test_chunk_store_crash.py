"""The disk chunk tier across a real crash: a writer process killed with SIGKILL mid-write leaves
no torn chunk under a real name, and torn or flipped bytes found later are discarded, never loaded."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from inference.chunk_store import StoreConfig, TieredChunkStore
from tests.helpers import ROOT
from tests.inference.test_chunk_store import make_chunk

# Writes chunk after chunk (write-through to disk) and acknowledges each seed once put() returned.
WRITER = """
import sys
from pathlib import Path
from inference.chunk_store import StoreConfig, TieredChunkStore
from tests.inference.test_chunk_store import make_chunk
store = TieredChunkStore(StoreConfig(ram_bytes=1 << 20, disk_dir=Path(sys.argv[1]), disk_write_through=True))
seed = 0
while True:
    store.put(make_chunk(seed, n_tokens=256, layers=4, heads=4, dim=32))
    print(seed, flush=True)
    seed += 1
"""
SHAPE = {"n_tokens": 256, "layers": 4, "heads": 4, "dim": 32}


def _kill_mid_write(folder: Path, acks_wanted: int = 15) -> list[int]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    acked: list[int] = []
    deadline = time.monotonic() + 40
    try:
        while len(acked) < acks_wanted:
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "writer stopped early"
            acked.append(int(line))
        proc.send_signal(signal.SIGKILL)  # it is busy writing the next chunks meanwhile
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return acked


def _same(a, b) -> bool:
    return a is not None and a.tokens == b.tokens and torch.equal(a.k, b.k) and torch.equal(a.v, b.v)


def test_sigkill_mid_write_leaves_only_whole_chunks(tmp_path: Path) -> None:
    acked = _kill_mid_write(tmp_path)
    cfg = StoreConfig(ram_bytes=1 << 20, disk_dir=tmp_path)
    with TieredChunkStore(cfg) as store:
        assert not list(tmp_path.glob(".*.tmp")), "stray temporaries are removed at start-up"
        for seed in acked:  # every acknowledged chunk is back, bit for bit
            chunk = make_chunk(seed, **SHAPE)
            assert _same(store.get(chunk.key), chunk)
        # Whatever else is on disk (the chunk in flight) is whole too, or it would not be indexed.
        for path in tmp_path.glob("*.ekv"):
            assert store.get(path.stem) is not None
        assert store.stats()["tiers"]["disk"]["corrupt"] == 0


def test_torn_and_flipped_files_are_discarded_on_restart(tmp_path: Path) -> None:
    cfg = StoreConfig(ram_bytes=1 << 20, disk_dir=tmp_path, disk_write_through=True)
    chunks = [make_chunk(seed, **SHAPE) for seed in range(4)]
    with TieredChunkStore(cfg) as store:
        for c in chunks:
            store.put(c)
    torn, flipped, header_cut = (tmp_path / f"{c.key}.ekv" for c in chunks[:3])
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])  # a crash mid-write, no rename
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x40  # one flipped bit in the tensor bytes: the header still parses
    flipped.write_bytes(bytes(data))
    header_cut.write_bytes(header_cut.read_bytes()[:7])  # shorter than the fixed prefix
    with TieredChunkStore(cfg) as store:
        assert all(store.get(c.key) is None for c in chunks[:3])
        assert _same(store.get(chunks[3].key), chunks[3])
        assert store.stats()["tiers"]["disk"]["corrupt"] == 3
    assert sorted(p.name for p in tmp_path.glob("*.ekv")) == [f"{chunks[3].key}.ekv"]
