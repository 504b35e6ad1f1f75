"""Saving and loading the derived search state next to the database.

Layout of the folder: ``meta.json`` names the generation whose files are current; every other
file carries its generation number. A save writes all files of a new generation, then replaces
meta.json atomically, so a crash mid-save leaves the previous generation loadable. Only numpy
``.npz`` (no pickles, the inverted file inside as FAISS's own bytes) and JSON are written.

Format 2 keeps the vectors in ``vectors.N.npz``; format 1 kept them in a FAISS file
(``vectors.N.faiss``, flat or HNSW), which is still read, so a saved index survives the upgrade.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.bm25 import BM25Index
from retrieval.catalog import Catalog
from retrieval.hybrid import HybridIndex

FORMAT = 2
_VECTOR_FILES = {1: "vectors.{gen}.faiss", 2: "vectors.{gen}.npz"}  # by format
_FIELDS = ("user_id", "agent_id", "session_id")


def save_index(index: HybridIndex, folder: Path, embed_model: str) -> None:
    """Write ``index`` under ``folder`` (created if needed). Usage: ``save_index(idx, Path("x.index"), m)``."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = _current_generation(folder) + 1
    files = {"vectors": _VECTOR_FILES[FORMAT].format(gen=gen), "catalog": f"catalog.{gen}.npz", "bm25": f"bm25.{gen}.npz"}
    tmp = folder / f"vectors.{gen}.tmp"
    index.vectors.save(tmp)
    _fsync_replace(tmp, folder / files["vectors"])
    _save_catalog(index.catalog, folder / files["catalog"])
    _save_bm25(index.bm25, folder / files["bm25"])
    meta = {"format": FORMAT, "generation": gen, "dim": index.dim, "applied_seq": index.applied_seq,
            "embed_model": embed_model, "rows": index.catalog.num_rows,
            "sha256": {name: _sha256(folder / name) for name in files.values()}}
    _atomic_write(folder / "meta.json", json.dumps(meta).encode())
    _remove_stale(folder, gen)


def load_index(folder: Path, index: HybridIndex, embed_model: str) -> bool:
    """Fill an empty ``index`` from ``folder``; False when absent or made for another model/format."""
    meta = _read_meta(folder)
    if meta is None or meta.get("format") not in _VECTOR_FILES or meta.get("embed_model") != embed_model or meta.get("dim") != index.dim:
        return False
    gen = meta["generation"]
    sums: dict[str, str] = meta.get("sha256", {})
    try:
        if not sums or any(_sha256(folder / name) != digest for name, digest in sums.items()):
            return False  # a torn or altered file is never loaded
        index.vectors.load(folder / _VECTOR_FILES[meta["format"]].format(gen=gen))
        _load_catalog(index.catalog, folder / f"catalog.{gen}.npz")
        _load_bm25(index.bm25, folder / f"bm25.{gen}.npz")
    except (OSError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile):
        return False
    if not len(index.vectors) == len(index.bm25) == index.catalog.num_rows == meta["rows"]:
        return False
    index.applied_seq = int(meta["applied_seq"])
    return True


def _save_catalog(cat: Catalog, path: Path) -> None:
    arrays = {f"code_{f}": cat.codes[f].view for f in _FIELDS}
    interned = json.dumps({f: cat.interned[f] for f in _FIELDS})
    _atomic_npz(path, alive=cat.alive.view, archived=cat.archived.view,
                note_ids=np.array(cat.note_ids, dtype=np.str_), interned=np.array(interned), **arrays)


def _load_catalog(cat: Catalog, path: Path) -> None:
    with np.load(path, allow_pickle=False) as z:
        cat.note_ids = [str(x) for x in z["note_ids"]]
        cat.alive.load(z["alive"])
        cat.archived.load(z["archived"])
        for f in _FIELDS:
            cat.codes[f].load(z[f"code_{f}"])
        cat.interned = {f: dict(v) for f, v in json.loads(str(z["interned"])).items()}
    cat.index_scopes()
    cat.row_of = {nid: row for row, nid in enumerate(cat.note_ids) if cat.alive.view[row]}


def _save_bm25(bm: BM25Index, path: Path) -> None:
    terms = sorted(bm.vocab, key=bm.vocab.__getitem__)
    _atomic_npz(
        path,
        terms=np.array(terms, dtype=np.str_),
        post_rows=_concat(bm.post_rows, "i"), post_tfs=_concat(bm.post_tfs, "f"),
        post_len=np.array([len(p) for p in bm.post_rows], np.int64),
        doc_terms=_concat(bm.doc_terms, "i"), doc_terms_len=np.array([len(d) for d in bm.doc_terms], np.int64),
        df=np.array(bm.df, np.int64), doc_len=np.frombuffer(bm.doc_len, np.float32),
        alive=np.frombuffer(bytes(bm.alive), np.uint8),
        totals=np.array([bm.num_docs, bm.total_len], np.float64),
    )


def _load_bm25(bm: BM25Index, path: Path) -> None:
    with np.load(path, allow_pickle=False) as z:
        bm.vocab = {str(t): i for i, t in enumerate(z["terms"])}
        bm.post_rows = _split(z["post_rows"], z["post_len"], "i")
        bm.post_tfs = _split(z["post_tfs"], z["post_len"], "f")
        bm.doc_terms = _split(z["doc_terms"], z["doc_terms_len"], "i")
        bm.df = [int(x) for x in z["df"]]
        bm.doc_len = array("f", z["doc_len"].tobytes())
        bm.alive = bytearray(z["alive"].tobytes())
        bm.num_docs, bm.total_len = int(z["totals"][0]), float(z["totals"][1])


def _concat(arrays: list[array], code: str) -> np.ndarray:
    dtype = np.int32 if code == "i" else np.float32
    if not arrays:
        return np.zeros(0, dtype)
    return np.concatenate([np.frombuffer(a, dtype=dtype) for a in arrays]) if any(arrays) else np.zeros(0, dtype)


def _split(flat: np.ndarray, lengths: np.ndarray, code: str) -> list[array]:
    out: list[array] = []
    start = 0
    for n in lengths:
        out.append(array(code, flat[start : start + int(n)].tobytes()))
        start += int(n)
    return out


def _atomic_npz(path: Path, **arrays: Any) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    _fsync_replace(tmp, path)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    _fsync_replace(tmp, path)


def _fsync_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _current_generation(folder: Path) -> int:
    meta = _read_meta(folder)
    return int(meta["generation"]) if meta and "generation" in meta else 0


def _remove_stale(folder: Path, keep: int) -> None:
    for path in folder.iterdir():
        parts = path.name.split(".")
        if len(parts) >= 3 and parts[1].isdigit() and int(parts[1]) != keep:
            path.unlink(missing_ok=True)
