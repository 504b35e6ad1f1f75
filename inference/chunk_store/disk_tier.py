"""Disk tier: one checksummed file per chunk in a folder, under a byte budget (file bytes).

Writes go to a temporary file that is fsynced, renamed over the final name and followed by an
fsync of the folder, so a crash leaves either the old file, the new one, or a stray temporary
(removed at start-up) — never a half-written chunk under its real name. A file that fails its
checksum anyway (disk corruption, a truncation by hand) is deleted and counted, never loaded.
A new tier on the same folder finds the chunks again (their access history starts afresh,
ordered by file modification time). One store owns a folder at a time (an flock on
``.lock``, released by ``close``); processes share chunks through Redis instead.
"""
from __future__ import annotations

import fcntl
import os
import struct
import uuid
from pathlib import Path

from inference.chunk_kv import ChunkKV
from inference.chunk_store.budget import BudgetIndex
from inference.chunk_store.codec import PREFIX_SIZE, CorruptChunk, decode, encode, read_header
from inference.chunk_store.counters import TierCounters
from inference.chunk_store.policies import EntryStats, EvictionPolicy
from inference.errors import InvalidParams

SUFFIX, TMP_SUFFIX = ".ekv", ".tmp"


def write_atomic(path: Path, data: bytes) -> None:
    """temp file + fsync + rename + fsync(folder)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskTier:
    """Usage: ``DiskTier(folder, budget, policy, codec="int8")``; ``put(chunk, now)``; ``get(key, now)``."""

    name = "disk"

    def __init__(self, folder: str | Path, budget: int, policy: EvictionPolicy, codec: str = "raw"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_folder(self.folder)
        self.codec = codec
        self.index = BudgetIndex(budget, policy)
        self.counters = TierCounters()
        self._load_index()

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def _load_index(self) -> None:
        for tmp in self.folder.glob(f".*{TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)  # a write that never reached its rename
        files = sorted(self.folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime_ns)
        for rank, path in enumerate(files, start=-len(files)):  # older files rank lower (LRU-like)
            try:
                header = _read_file_header(path)
            except CorruptChunk:
                self._discard_corrupt(path.stem)
                continue
            size = path.stat().st_size
            if header.get("key") != path.stem or size > self.index.budget:
                self._discard_corrupt(path.stem)
                continue
            victims = self.index.admit(path.stem, size, len(header["tokens"]), rank)
            for v in victims or []:  # the budget may have shrunk since the last run
                self._path(v).unlink(missing_ok=True)
                self.counters.evictions += 1

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def entry(self, key: str) -> EntryStats | None:
        return self.index.entries.get(key)

    def get(self, key: str, now: int) -> ChunkKV | None:
        if key not in self.index:
            return None
        try:
            blob = self._path(key).read_bytes()
            chunk = decode(blob, expected_key=key)
        except FileNotFoundError:
            self.index.remove(key)
            return None
        except CorruptChunk:
            self._discard_corrupt(key)
            return None
        self.index.touch(key, now)
        return chunk

    def put(self, chunk: ChunkKV, now: int) -> list[str] | None:
        """Write ``chunk``; returns the keys evicted to make room, or None if it was refused."""
        blob = encode(chunk, self.codec)
        victims = self.index.admit(chunk.key, len(blob), chunk.n_tokens, now)
        if victims is None:
            self.counters.rejected += 1
            return None
        for v in victims:
            self._path(v).unlink(missing_ok=True)
        self.counters.evictions += len(victims)
        try:
            write_atomic(self._path(chunk.key), blob)
        except OSError:
            self.index.remove(chunk.key)
            raise
        self.counters.puts += 1
        return victims

    def remove(self, key: str) -> None:
        self.index.remove(key)
        self._path(key).unlink(missing_ok=True)

    def close(self) -> None:
        """Release the folder for another store (the files stay)."""
        self._lock.close()

    def _discard_corrupt(self, key: str) -> None:
        self.counters.corrupt += 1
        self.remove(key)


def _read_file_header(path: Path) -> dict:
    with open(path, "rb") as f:
        prefix = f.read(PREFIX_SIZE)
        if len(prefix) < PREFIX_SIZE:
            raise CorruptChunk("shorter than the fixed prefix")
        (n,) = struct.unpack_from("<I", prefix, PREFIX_SIZE - 4)
        return read_header(prefix + f.read(n))


def _lock_folder(folder: Path):  # noqa: ANN202
    """An exclusive, non-blocking flock on ``folder/.lock``: two stores indexing one folder would
    each enforce the budget on half the truth and delete each other's files."""
    f = open(folder / ".lock", "a+b")  # noqa: SIM115 (held for the tier's lifetime)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise InvalidParams(f"{folder} is used by another chunk store; close it first") from None
    return f
