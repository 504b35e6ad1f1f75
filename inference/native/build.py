"""Compile C sources into a shared library with the machine's compiler, once per machine.

Usage: ``path = build_library([Path("k.c")], cache_dir, "k")``; then ``ctypes.CDLL(str(path))``.

The library is built with ``-O3 -march=native`` into ``cache_dir`` under a name that hashes the
sources, the flags, the compiler's version and the CPU's flags, so a copied home directory or a
new CPU never loads a library built for another machine; the file is written under a temporary
name and renamed, so concurrent first builds are safe. Raises ``RuntimeError`` (no compiler, a
build error), ``OSError`` or ``subprocess.SubprocessError``; callers fall back to their
pure-Python path.

Not only the inference engine's kernels: the API layer also builds retrieval's linking scan with it
(retrieval may not import this package, so the built library is handed to it).
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

FLAGS = ("-O3", "-march=native", "-shared", "-fPIC", "-std=c11")


def build_library(sources: Sequence[Path], cache_dir: Path, stem: str) -> Path:
    """The built library of ``sources`` in ``cache_dir`` (``{stem}-{hash}.so``), built if missing."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler found")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    digest = hashlib.sha256()
    for part in (*(src.read_bytes() for src in sources), " ".join(FLAGS).encode(), version.encode(),
                 platform.machine().encode(), cpu_flags().encode()):
        digest.update(part)
    path = cache_dir / f"{stem}-{digest.hexdigest()[:16]}.so"
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache_dir)
    os.close(fd)
    try:
        done = subprocess.run([cc, *FLAGS, "-o", tmp, *map(str, sources)], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{cc} failed: {done.stderr.strip()[:500]}")
        os.replace(tmp, path)  # atomic: a concurrent builder's identical file is simply replaced
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def default_machine_cache() -> Path:
    """``~/.cache/engram``, or a per-user folder under the temporary directory without a home."""
    try:
        return Path.home() / ".cache" / "engram"
    except RuntimeError:  # no HOME and no passwd entry (some containers)
        return Path(tempfile.gettempdir()) / f"engram-{os.getuid()}"


@functools.cache
def cpu_flags() -> str:
    """The CPU's feature flags (-march=native compiles for them); read once per process (the
    kernels' build key and the prefill memo's key both need them)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()
