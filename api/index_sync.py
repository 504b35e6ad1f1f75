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
    if folder is not None:
        if load_index(folder, index, embed_model):
            if index.applied_seq == last:
                return index, "loaded"
            if index.applied_seq < last:
                catch_up(index, store)
                return index, "caught_up"
            log.warning("saved index is ahead of the database (seq %s > %s); rebuilding", index.applied_seq, last)
        index = make()  # a load that failed part-way may have filled some of it
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


def apply_changes(index: HybridIndex, store: NoteStore, skip_origin: str | None, batch: int = 5000) -> list[str]:
    """Apply the change feed after ``index.applied_seq`` to ``index``; returns the note ids applied.

    Changes made by ``skip_origin`` (the instance owning ``index``, which indexed them as it wrote)
    only move the position. Each note is re-read from SQL as it is now, so applying a change twice,
    or a newer state than the change, is harmless; a deleted note is removed.
    """
    applied: list[str] = []
    while True:
        changes, notes = store.feed_after(index.applied_seq, skip_origin, batch)
        if not changes:
            return applied
        ids = list(dict.fromkeys(c.note_id for c in changes if skip_origin is None or c.origin != skip_origin))
        present = {n.id: n for n in notes}
        for note_id in ids:
            if note_id not in present:
                index.remove(note_id)
        index.add_stored(present[i] for i in ids if i in present)
        index.applied_seq = changes[-1].seq
        applied.extend(ids)


def persist(index: HybridIndex, store: NoteStore, folder: Path, embed_model: str, *, following: bool = False) -> None:
    """Save the index, stamped with the change-feed position it reflects: its own position when
    it follows the feed (other writers may be ahead of it), else the newest change (it was the
    only writer, and indexed its own writes as it made them)."""
    if not following:
        index.applied_seq = store.last_change()
    save_index(index, folder, embed_model)
