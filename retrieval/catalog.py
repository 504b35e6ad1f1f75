"""Row registry shared by the derived indexes: note id ↔ row, and per-row scope and state.

Every indexed version of a note gets a new row (rows are append-only, so the vector index and
BM25 never renumber); replaced and deleted rows are marked dead and masked out. Scope values are
interned to integer codes so a scope mask over 100k rows is a few vectorised comparisons.
"""
from __future__ import annotations

import numpy as np

from memory.types import Scope
from retrieval.grow import GrowArray

_FIELDS = ("user_id", "agent_id", "session_id")


class Catalog:
    """Maps note ids to rows and answers "which rows may this search see?" as a boolean mask."""

    def __init__(self) -> None:
        self.note_ids: list[str] = []
        self.row_of: dict[str, int] = {}
        self.alive = GrowArray(np.bool_)
        self.archived = GrowArray(np.bool_)
        self.codes = {f: GrowArray(np.int32) for f in _FIELDS}
        self.interned: dict[str, dict[str, int]] = {f: {} for f in _FIELDS}
        # The rows of each scope value, ascending: linking asks for one user's rows once per
        # scope in every batch, and a mask over every row cost ~0.03 ms a note at 100k notes.
        self.rows_by: dict[str, dict[int, GrowArray]] = {f: {} for f in _FIELDS}

    def __len__(self) -> int:
        return len(self.row_of)

    @property
    def num_rows(self) -> int:
        return len(self.note_ids)

    def add(self, note_id: str, scope: Scope, archived: bool) -> int:
        """A new row for (a new version of) ``note_id``; the previous row, if any, dies."""
        self.kill(note_id)
        row = len(self.note_ids)
        self.note_ids.append(note_id)
        self.row_of[note_id] = row
        self.alive.append(True)
        self.archived.append(archived)
        for f in _FIELDS:
            code = self._intern(f, getattr(scope, f))
            self.codes[f].append(code)
            if code:
                self.rows_by[f].setdefault(code, GrowArray(np.int64, capacity=4)).append(row)
        return row

    def kill(self, note_id: str) -> int | None:
        """Mark the note's row dead; returns it (None if the note was not indexed)."""
        row = self.row_of.pop(note_id, None)
        if row is not None:
            self.alive.view[row] = False
        return row

    def set_archived(self, note_id: str, archived: bool) -> None:
        row = self.row_of.get(note_id)
        if row is not None:
            self.archived.view[row] = archived

    def mask(self, scope: Scope | None, include_archived: bool) -> np.ndarray:
        """Rows a search in ``scope`` may return (live; unarchived unless asked)."""
        mask = self.alive.view.copy()
        if not include_archived:
            mask &= ~self.archived.view
        for f, value in (scope.as_dict().items() if scope else ()):
            code = self.interned[f].get(value)
            if code is None:
                return np.zeros_like(mask)
            mask &= self.codes[f].view == code
        return mask

    def rows(self, scope: Scope | None, include_archived: bool) -> np.ndarray:
        """``np.flatnonzero(mask(scope, include_archived))``, read from the shortest of the scope's
        row lists: O(the scope's rows), not O(every row)."""
        fields = scope.as_dict() if scope else {}
        if not fields:
            return np.flatnonzero(self.mask(None, include_archived))
        lists = []
        for f, value in fields.items():
            code = self.interned[f].get(value)
            if code is None or code not in self.rows_by[f]:
                return np.zeros(0, np.int64)
            lists.append((f, code, self.rows_by[f][code].view))
        first, _, rows = min(lists, key=lambda item: len(item[2]))
        keep = self.alive.view[rows]
        if not include_archived:
            keep &= ~self.archived.view[rows]
        for f, code, _ in lists:
            if f != first:
                keep &= self.codes[f].view[rows] == code
        return rows[keep]

    def index_scopes(self) -> None:
        """Rebuild ``rows_by`` from the codes (after they were loaded from disk)."""
        for f in _FIELDS:
            codes = self.codes[f].view
            order = np.argsort(codes, kind="stable")  # stable: each value's rows stay ascending
            bounds = np.flatnonzero(np.diff(codes[order])) + 1
            self.rows_by[f] = {}
            for group in np.split(order, bounds):
                if len(group) and codes[group[0]]:
                    rows = GrowArray(np.int64, capacity=4)
                    rows.load(group.astype(np.int64))
                    self.rows_by[f][int(codes[group[0]])] = rows

    def _intern(self, field: str, value: str | None) -> int:
        if value is None:
            return 0
        table = self.interned[field]
        return table.setdefault(value, len(table) + 1)
