"""Catalog.rows (a scope's row lists) agrees with the mask over every row, also after a reload."""
import random

import numpy as np

from memory.types import IndexedNote, Scope
from retrieval.hybrid import HybridIndex
from retrieval.persist import load_index, save_index

SCOPES = [Scope("u1", None, None), Scope("u2", "a", None), Scope(None, "a", None), Scope(None, None, "s1"),
          Scope("u1", "a", "s2"), Scope("u3", None, None), Scope("nobody", None, None), Scope("u1", "b", None)]


def _churned(seed: int) -> HybridIndex:
    """Notes over a few users, agents and sessions; some replaced, deleted or archived."""
    rng = random.Random(seed)
    index = HybridIndex(4)
    ids = []
    for i in range(400):
        fields = (rng.choice(["u1", "u2", "u3", None]), rng.choice(["a", "b", None]), rng.choice(["s1", "s2", None]))
        scope = Scope(*fields) if any(fields) else Scope("u1", None, None)
        note_id = rng.choice(ids) if ids and rng.random() < 0.2 else f"n{i}"  # a new version, or a new note
        index.add([IndexedNote(note_id, scope, f"text {i}", rng.random() < 0.1, None)], np.ones((1, 4), np.float32))
        ids.append(note_id)
        if rng.random() < 0.1:
            index.remove(rng.choice(ids))
        if rng.random() < 0.1:
            index.set_archived(rng.choice(ids), rng.random() < 0.5)
    return index


def _agree(index: HybridIndex) -> None:
    for scope in [*SCOPES, None]:
        for archived in (False, True):
            rows = index.rows(scope, archived)
            assert rows.dtype == np.int64
            assert list(rows) == list(np.flatnonzero(index.mask(scope, archived))), (scope, archived)


def test_scope_rows_equal_the_mask(tmp_path):
    index = _churned(1)
    assert len(index.rows(Scope("u1", None, None), False)) > 20
    _agree(index)
    save_index(index, tmp_path / "i", "m")
    back = HybridIndex(4)
    assert load_index(tmp_path / "i", back, "m")
    _agree(back)
    back.add([IndexedNote("late", Scope("u1", "a", None), "late note", False, None)], np.ones((1, 4), np.float32))
    assert back.rows(Scope("u1", "a", None), False)[-1] == back.row_of("late")
    _agree(back)
