"""Secondary indexes that a large ingest drops and builds once at its end, instead of updating
them note by note (SQLite only).

Each new note adds ~5 entries to the links' ``target_id`` index and ~2.5 to history's
``note_id`` index (its own row and its evolved neighbours'). Their keys are older notes' ids, so
each entry lands on a page of its own: at 100k notes those two indexes were a quarter of the
store's CPU a note and more than half of its page writes (docs/benchmarks.md, issue 2). Building an index
from scratch sorts its entries and writes each page once. A bulk loader's old trade, taken only
when the call adds enough notes that one build costs less than the random inserts it replaces.

While an index is away, what it serves still works, by scanning its table: a note's incoming
links (``get``, ``links``), its history, and deleting a note (the foreign key's cascade). A crash
in the middle leaves the index missing; ``restore_indexes`` (run when the database is opened)
builds it again.

Usage: ``with deferred_indexes(engine, new_notes=30_000): ...inserts...``.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, Index, Table, func, select
from sqlalchemy.schema import CreateIndex, DropIndex

from memory.schema import HistoryRow, LinkRow
from memory.transactions import read_tx, write_tx


def _index(table: Table, name: str) -> Index:
    """The schema's own definition, so that a rebuild makes the index the migrations made."""
    return next(ix for ix in table.indexes if ix.name == name)


# (the index, its table's id column, the entries a new note adds to it, about)
_DEFERRABLE = (
    (_index(LinkRow.__table__, "ix_links_target_id"), LinkRow.id, 5.0),
    (_index(HistoryRow.__table__, "ix_history_note_id"), HistoryRow.id, 2.5),
)
# An index build costs about this many random inserts an entry it holds (see worth_deferring).
# Measured at 100k notes: a build took 0.7-1.0 us of CPU an entry (468k links, 236k history rows);
# the random inserts it replaced ~13 us an entry. Smaller stores keep more of an index's pages in
# the cache, so their inserts cost less: hence 0.1, not 0.07.
BUILD_COST_RATIO = 0.1


def worth_deferring(new_entries: float, existing_entries: int) -> bool:
    """True when rebuilding an index of ``existing_entries + new_entries`` entries costs less than
    inserting ``new_entries`` one by one, with a build costing ``BUILD_COST_RATIO`` of a random
    insert an entry."""
    return new_entries > BUILD_COST_RATIO * (existing_entries + new_entries)


def _chosen(engine: Engine, new_notes: int) -> list[Index]:
    chosen = []
    with read_tx(engine) as conn:
        for index, id_column, per_note in _DEFERRABLE:
            # max(id) for the row count: one B-tree descent, not a scan (deleted rows' ids may be reused).
            existing = conn.execute(select(func.coalesce(func.max(id_column), 0))).scalar_one()
            if worth_deferring(new_notes * per_note, existing):
                chosen.append(index)
    return chosen


@contextmanager
def deferred_indexes(engine: Engine, new_notes: int, *, min_notes: int = 2048) -> Iterator[list[str]]:
    """Drop the deferrable indexes worth dropping for an ingest of ``new_notes`` notes, run the
    block, and build them again (also when the block raises). Yields the names dropped. On
    PostgreSQL, or for fewer than ``min_notes`` notes, nothing is dropped."""
    if engine.dialect.name != "sqlite" or new_notes < min_notes:
        yield []
        return
    dropped = _chosen(engine, new_notes)
    with write_tx(engine) as conn:
        for index in dropped:
            conn.execute(DropIndex(index, if_exists=True))
    try:
        yield [str(ix.name) for ix in dropped]
    finally:
        _create(engine, dropped)


def restore_indexes(engine: Engine) -> None:
    """Build any deferrable index that is missing (an ingest that died before its end)."""
    if engine.dialect.name == "sqlite":
        _create(engine, [index for index, _id, _per_note in _DEFERRABLE])


def _create(engine: Engine, indexes: list[Index]) -> None:
    with write_tx(engine) as conn:
        for index in indexes:
            # IF NOT EXISTS: another writer on the file may have built it already.
            conn.execute(CreateIndex(index, if_not_exists=True))
