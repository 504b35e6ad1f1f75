"""Opening the derived indexes: load the saved state and catch up on the change feed, or rebuild."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from memory.store import NoteStore
from retrieval.hybrid import HybridIndex
from retrieval.persist import load_index, save_index

log = logging.getLogger(__name__)


def open_index(make: Callable[[], HybridIndex], store: NoteStore, folder: Path | None,
               embed_model: str) -> tuple[HybridIndex, str]:
    """An index up to date with ``store``, and how it got there: "loaded", "caught_up" or "rebuilt"."""
    last = store.last_change()
    index = make()
    if folder is not None and load_index(folder, index, embed_model):
        if index.applied_seq == last:
            return index, "loaded"
        if index.applied_seq < last:
            catch_up(index, store)
            return index, "caught_up"
        log.warning("saved index is ahead of the database (seq %s > %s); rebuilding", index.applied_seq, last)
        index = make()
    rebuild(index, store)
    return index, "rebuilt"


def rebuild(index: HybridIndex, store: NoteStore) -> int:
    """Index every note from SQL (embeddings are stored there, so nothing is re-embedded)."""
    index.applied_seq = store.last_change()
    return index.add_stored(store.indexed_notes())


def catch_up(index: HybridIndex, store: NoteStore) -> int:
    """Apply the notes changed since ``index.applied_seq``: re-index the present, drop the gone."""
    target = store.last_change()
    changed = store.changed_since(index.applied_seq)
    present = {n.id: n for n in store.indexed_notes(changed)}
    for note_id in changed:
        if note_id not in present:
            index.remove(note_id)
    index.add_stored(present[i] for i in changed if i in present)
    index.applied_seq = target
    return len(changed)


def persist(index: HybridIndex, store: NoteStore, folder: Path, embed_model: str) -> None:
    """Save the index, stamped with the change-feed position it reflects."""
    index.applied_seq = store.last_change()
    save_index(index, folder, embed_model)
