"""Linking's compiled scan (retrieval/link_scan.c), built with the machine's compiler on first use.

retrieval may not import inference, where the builder lives, so the API layer builds the library
and hands the loaded scan to the index. Without a compiler (or with a build that fails) linking
scans the float vectors as before, and a warning says why once.
"""
from __future__ import annotations

import functools
import logging
import subprocess
from pathlib import Path

from inference.native import build_library, default_machine_cache
from retrieval.link_scan import SOURCE, LinkScan

log = logging.getLogger(__name__)


@functools.cache
def load_link_scan(cache_dir: str | Path | None = None) -> LinkScan | None:
    """The scan, built once per machine into ``cache_dir`` (default ``~/.cache/engram/kernels``);
    None when that is not possible here."""
    try:
        folder = Path(cache_dir) if cache_dir is not None else default_machine_cache() / "kernels"
        return LinkScan(build_library([SOURCE], folder, "link_scan"))
    except (OSError, subprocess.SubprocessError, RuntimeError) as e:
        log.warning("linking's 8-bit scan unavailable, linking scans the float vectors: %s", e)
        return None
